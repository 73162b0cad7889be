package bridge

// Reloading the bridges of a running broker (SIGHUP, the admin endpoint's
// reload action) from a new list of configs.
//
// Invariants:
//   - An invalid list changes nothing: it is validated as a whole first.
//   - A bridge whose validated config is unchanged keeps running, link and
//     all; one whose config changed is stopped and started again with the
//     new config (same name, so the same internal session: its queue is
//     kept and drains over the new link); a new name is started; a name no
//     longer listed is stopped and its session retired (unsubscribed, queue
//     kept, as at Start).
//   - A changed bridge whose new config cannot start (its local session
//     setup fails: a subscription the broker refuses, a store failure) is
//     started again with its previous config, and the reload reports both;
//     a new bridge that cannot start, or a changed one whose previous
//     config does not start either, is reported and not running
//     afterwards. The others still reload.
//   - Reload and Stop are serialized; a Reload after Stop changes nothing
//     and says so.
//   - A restarted bridge starts its counters (forwarded, connects) from
//     zero, as after a broker restart.

import (
	"errors"
	"fmt"
	"reflect"
)

// Reload makes the running bridges those of cfgs (see the invariants).
func (m *Manager) Reload(cfgs []Config) error {
	cfgs, err := Validate(cfgs)
	if err != nil {
		return err
	}
	m.change.Lock()
	defer m.change.Unlock()
	if m.stopped {
		return errors.New("bridges: stopped")
	}
	running := map[string]*Bridge{}
	for _, br := range m.current() {
		running[br.cfg.Name] = br
	}
	keep, listed := map[string]bool{}, map[string]bool{}
	for _, c := range cfgs {
		listed[c.Name] = true
		if br := running[c.Name]; br != nil && reflect.DeepEqual(br.cfg, c) {
			keep[c.Name] = true
		}
	}
	var stopping []*Bridge
	for name, br := range running {
		if !keep[name] {
			stopping = append(stopping, br)
		}
	}
	stopAll(stopping)
	for _, br := range stopping {
		if !listed[br.cfg.Name] {
			m.log.Info("bridge removed from the config: stopped", "bridge", br.cfg.Name)
			retire(m.broker, br.cfg.ClientIDLocal(), m.log)
		}
	}
	var next []*Bridge
	var errs []error
	for _, c := range cfgs {
		if keep[c.Name] {
			next = append(next, running[c.Name])
			continue
		}
		br := newBridge(m.broker, c, m.log.With("component", "bridge"))
		if err := br.start(); err != nil {
			if old := running[c.Name]; old != nil {
				prev := newBridge(m.broker, old.cfg, m.log.With("component", "bridge"))
				if perr := prev.start(); perr == nil {
					m.log.Warn("bridge kept its previous config: the new one did not start", "bridge", c.Name, "err", err)
					errs = append(errs, fmt.Errorf("bridge %s still runs with its previous config: the new one did not start: %w", c.Name, err))
					next = append(next, prev)
					continue
				}
			}
			errs = append(errs, fmt.Errorf("bridge %s not running: %w", c.Name, err))
			continue
		}
		next = append(next, br)
		what := "bridge started"
		if running[c.Name] != nil {
			what = "bridge restarted with its new config"
		}
		m.log.Info(what, "bridge", c.Name, "remote", c.Address, "protocol", c.Protocol, "rules", len(c.Rules))
	}
	m.mu.Lock()
	m.bridges = next
	m.mu.Unlock()
	return errors.Join(errs...)
}
