package main

// Tables for people. Every renderer takes the rows of store/inspect.go —
// the same values whether they were read from a stopped store or from the
// admin endpoint — so the two print the same. Times in rows are absolute;
// ages are computed here, against now().

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-mqtt/cairn/store"
)

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(w io.Writer, cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	fmt.Fprintln(w)
}

// age renders how long ago t was, compactly: 7s, 3m05s, 2h10m, 4d03h.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return compactDuration(now().Sub(t))
}

func compactDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// count renders "1 message", "2 messages".
func count(n int, one, many string) string { return strconv.Itoa(n) + " " + plural(n, one, many) }

// took renders how long something took: to the microsecond under a
// millisecond, to the millisecond above.
func took(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func bytesize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func protocol(v byte) string {
	switch v {
	case 3:
		return "3.1"
	case 4:
		return "3.1.1"
	case 5:
		return "5.0"
	case 0:
		return "-"
	}
	return "level " + strconv.Itoa(int(v))
}

// expiry renders a session expiry interval.
func expiry(r store.SessionRow) string {
	switch {
	case r.Clean:
		return "-"
	case r.Expiry == store.NeverExpires:
		return "never"
	}
	return compactDuration(time.Duration(r.Expiry) * time.Second)
}

// state renders whether a session is connected. In a stopped store, a
// session recorded as connected lost its connection when the broker
// stopped without closing it (a crash): the next start publishes its will.
func state(r store.SessionRow, live bool) string {
	switch {
	case r.Damage != "":
		return "damaged"
	case r.Connected && live:
		return "online " + age(r.ConnectedAt)
	case r.Connected:
		return "cut (broker stopped)"
	case !r.DisconnectedAt.IsZero():
		return "offline " + age(r.DisconnectedAt)
	}
	return "offline"
}

func renderSessions(w io.Writer, rows []store.SessionRow, live bool) error {
	tw := newTable(w)
	row(tw, "CLIENT", "CLEAN", "PROTO", "STATE", "EXPIRY", "SUBS", "QUEUED", "BYTES", "INFLIGHT", "QOS2-IN", "WILL")
	for _, r := range rows {
		row(tw, printableID(r.Client), yesNo(r.Clean), protocol(r.Version), state(r, live), expiry(r), r.Subscriptions, r.Queued, bytesize(r.QueuedBytes), r.Inflight, r.InboundQoS2, yesNo(r.Will))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Damage != "" {
			fmt.Fprintf(w, "damaged %s: %s\n", printableID(r.Client), r.Damage)
		}
	}
	_, err := fmt.Fprintln(w, count(len(rows), "session", "sessions"))
	return err
}

func printableID(s string) string {
	if strconv.CanBackquote(s) && !strings.ContainsAny(s, " \t") && s != "" {
		return s
	}
	return strconv.Quote(s)
}

func renderSession(w io.Writer, d *store.SessionDetail, live bool) error {
	tw := newTable(w)
	row(tw, "client:", printableID(d.Client))
	row(tw, "clean:", yesNo(d.Clean))
	row(tw, "protocol:", protocol(d.Version))
	row(tw, "state:", state(d.SessionRow, live))
	if !d.ConnectedAt.IsZero() {
		row(tw, "connected at:", d.ConnectedAt.Format(time.RFC3339))
	}
	if !d.DisconnectedAt.IsZero() {
		row(tw, "disconnected at:", d.DisconnectedAt.Format(time.RFC3339))
	}
	exp := expiry(d.SessionRow)
	if exp != "-" && exp != "never" {
		exp += " after disconnect"
		if !d.ExpiresAt.IsZero() {
			exp += ", at " + d.ExpiresAt.Format(time.RFC3339) + " (" + expires(d.ExpiresAt) + ")"
		}
	}
	row(tw, "expiry:", exp)
	if d.Username != "" {
		row(tw, "username:", d.Username)
	}
	if m := d.WillMsg; m != nil {
		will := fmt.Sprintf("%s qos %d retain %s, %d bytes: %s", m.Topic, m.QoS, yesNo(m.Retain), m.Size, m.Preview)
		if m.Delay > 0 {
			will += fmt.Sprintf(" (delay %ds)", m.Delay)
		}
		if !d.WillAt.IsZero() {
			will += ", due " + expires(d.WillAt)
		}
		row(tw, "will:", will)
	} else {
		row(tw, "will:", "none")
	}
	queue := fmt.Sprintf("%s, %s", count(d.Queued, "message", "messages"), bytesize(d.QueuedBytes))
	if !d.Clean {
		queue += fmt.Sprintf(", seqs [%d, %d)", d.QueueHead, d.QueueNext)
	}
	row(tw, "queue:", queue)
	pids := "none"
	if len(d.InboundPIDs) > 0 {
		var s []string
		for _, p := range d.InboundPIDs {
			s = append(s, strconv.Itoa(int(p)))
		}
		pids = strings.Join(s, " ")
	}
	row(tw, "inbound qos2 awaiting PUBREL:", pids)
	if d.Damage != "" {
		row(tw, "damage:", d.Damage)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "SUBSCRIPTION", "QOS", "NO-LOCAL", "RETAIN-AS-PUBLISHED", "RETAIN-HANDLING", "SUB-ID")
	for _, s := range d.Subs {
		if s.Damage != "" {
			row(tw, s.Filter, "damaged: "+s.Damage, "", "", "", "")
			continue
		}
		id := "-"
		if s.SubID != 0 {
			id = strconv.Itoa(int(s.SubID))
		}
		row(tw, s.Filter, s.QoS, yesNo(s.NoLocal), yesNo(s.RetainAsPublished), s.RetainHandling, id)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "IN FLIGHT", "PACKET-ID", "STATE", "QOS", "TOPIC")
	for _, in := range d.Inflights {
		row(tw, in.Seq, in.PacketID, in.State, in.QoS, in.Topic)
	}
	return tw.Flush()
}

func renderQueue(w io.Writer, rows []store.QueueRow, limit int) error {
	tw := newTable(w)
	row(tw, "SEQ", "MSG", "TOPIC", "QOS", "STATE", "PACKET-ID", "SIZE", "AGE", "EXPIRES", "PAYLOAD")
	for _, r := range rows {
		if r.Damage != "" {
			row(tw, r.Seq, r.MsgID, "-", r.QoS, r.State, "-", r.Size, "-", "-", "damaged: "+r.Damage)
			continue
		}
		pid := "-"
		if r.PacketID != 0 {
			pid = strconv.Itoa(int(r.PacketID))
		}
		row(tw, r.Seq, r.MsgID, r.Topic, r.QoS, r.State, pid, r.Size, age(r.PublishedAt), expires(r.ExpiresAt), r.Preview)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if limit > 0 && len(rows) == limit {
		// The page is full: say so, and where the next one starts.
		_, err := fmt.Fprintf(w, "%s shown (--limit %d); the queue may hold more: --from %d for the next ones\n",
			count(len(rows), "message", "messages"), limit, rows[len(rows)-1].Seq+1)
		return err
	}
	_, err := fmt.Fprintln(w, count(len(rows), "message", "messages"))
	return err
}

// expires renders an expiry time: never, in 5m00s, expired 3s ago.
func expires(t time.Time) string {
	switch d := t.Sub(now()); {
	case t.IsZero():
		return "never"
	case d > 0:
		return "in " + compactDuration(d)
	default:
		return "expired " + compactDuration(-d) + " ago"
	}
}

func renderRetained(w io.Writer, rows []store.RetainedRow) error {
	tw := newTable(w)
	row(tw, "TOPIC", "QOS", "SIZE", "AGE", "EXPIRES", "FROM", "PAYLOAD")
	for _, r := range rows {
		if r.Damage != "" {
			row(tw, r.Topic, "-", "-", "-", "-", "-", "damaged: "+r.Damage)
			continue
		}
		from := r.From
		if from == "" {
			from = "-"
		}
		row(tw, r.Topic, r.QoS, r.Size, age(r.PublishedAt), expires(r.ExpiresAt), from, r.Preview)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, count(len(rows), "retained message", "retained messages"))
	return err
}

// eventTable prints events with fixed-width columns, so that a followed
// log lines up without buffering.
type eventTable struct {
	w      io.Writer
	n      int
	follow bool
}

func newEventTable(w io.Writer, follow bool) *eventTable {
	fmt.Fprintf(w, "%-8s %-24s %-16s %-16s %s\n", "SEQ", "TIME", "KIND", "CLIENT", "DETAIL")
	return &eventTable{w: w, follow: follow}
}

func (t *eventTable) row(r store.EventRow) error {
	t.n++
	ts := "-"
	if !r.Time.IsZero() {
		ts = r.Time.Format("2006-01-02T15:04:05.000Z")
	}
	client := "-"
	if r.Client != "" {
		client = printableID(r.Client)
	}
	_, err := fmt.Fprintf(t.w, "%-8d %-24s %-16s %-16s %s\n", r.Seq, ts, r.Kind, client, eventDetail(r))
	return err
}

func (t *eventTable) flush() error {
	if t.follow {
		return nil
	}
	_, err := fmt.Fprintln(t.w, count(t.n, "event", "events"))
	return err
}

// eventDetail summarizes the kind-specific fields of an event.
func eventDetail(r store.EventRow) string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if r.Damage != "" {
		return "damaged: " + r.Damage
	}
	switch r.Kind {
	case "session-opened", "session-closed", "will-fired":
		if r.Connected != nil {
			add("connected=%s", yesNo(*r.Connected))
		}
		if r.Expiry != nil {
			e := "never"
			if *r.Expiry != store.NeverExpires {
				e = compactDuration(time.Duration(*r.Expiry) * time.Second)
			}
			add("expiry=%s", e)
		}
		if r.Will {
			add("will")
		}
	case "subscribed", "unsubscribed":
		add("filter=%s", r.Filter)
		if r.QoS != nil {
			add("qos=%d", *r.QoS)
		}
	case "published":
		add("topic=%s", r.Topic)
		if r.QoS != nil {
			add("qos=%d", *r.QoS)
		}
		if r.Size != nil {
			add("size=%d", *r.Size)
		}
		if r.Retain {
			add("retain")
		}
		if len(r.Targets) > 0 {
			add("to=%s", strings.Join(r.Targets, ","))
		}
		if len(r.Dropped) > 0 {
			add("dropped=%s", strings.Join(r.Dropped, ","))
		}
		if r.QueueFull != "" {
			add("refused: queue of %s full", r.QueueFull)
		}
		if r.InboundPID != 0 {
			add("inbound-pid=%d", r.InboundPID)
		}
	case "acked", "dropped", "pubrec-received", "delivered":
		add("queue-seq=%d", r.QSeq)
		if r.PacketID != 0 {
			add("packet-id=%d", r.PacketID)
		}
		if r.Reason != "" {
			add("reason=%s", r.Reason)
		}
	case "released":
		add("packet-id=%d", r.PacketID)
	case "retained-expired":
		add("topic=%s", r.Topic)
	case "body-collected":
		add("msg=%d", r.MsgID)
	}
	if r.Reason != "" && r.Kind != "acked" && r.Kind != "dropped" && r.Kind != "pubrec-received" && r.Kind != "delivered" {
		add("reason=%s", r.Reason)
	}
	return strings.Join(p, " ")
}

func renderStats(w io.Writer, st *store.Stats, live bool) error {
	tw := newTable(w)
	mode := "stopped, opened read-only"
	if live {
		mode = "running broker"
	}
	row(tw, "store:", fmt.Sprintf("%s (%s), schema %d", st.Dir, mode, st.Schema))
	log := "empty"
	if st.FirstSeq > 0 {
		log = fmt.Sprintf("seqs %d..%d", st.FirstSeq, st.LastSeq)
	}
	row(tw, "event log:", fmt.Sprintf("%s, last seq %d", log, st.LastSeq))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "KEY SPACE", "PREFIX", "KEYS", "BYTES", "ON DISK")
	for _, f := range st.Families {
		row(tw, f.Family, f.Prefix, f.Keys, bytesize(f.Bytes), bytesize(int64(f.DiskBytes)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "LEVEL", "FILES", "SIZE", "SCORE")
	for _, l := range st.Levels {
		row(tw, fmt.Sprintf("L%d", l.Level), l.Files, bytesize(l.Bytes), fmt.Sprintf("%.2f", l.Score))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "disk:", bytesize(int64(st.DiskBytes)))
	row(tw, "wal:", fmt.Sprintf("%d files, %s live, %s on disk", st.WALFiles, bytesize(int64(st.WALBytes)), bytesize(int64(st.WALPhysicalBytes))))
	row(tw, "memtables:", fmt.Sprintf("%d, %s", st.MemTables, bytesize(int64(st.MemTableBytes))))
	row(tw, "compaction:", fmt.Sprintf("debt %s, %d running, %d done, %d flushes, read amplification %d, %d tombstones",
		bytesize(int64(st.CompactionDebt)), st.CompactionsActive, st.Compactions, st.Flushes, st.ReadAmp, st.Tombstones))
	fsync := "- (not running)"
	if live {
		fsync = fmt.Sprintf("%d fsyncs for %d commits since start, mean %v", st.Syncs, st.Commits, st.FsyncMean.Round(time.Microsecond))
	}
	row(tw, "fsync:", fsync)
	return tw.Flush()
}
