package wire_test

import (
	"encoding/json"
	"fmt"

	"github.com/cairn-mqtt/cairn/wire"
)

// dump renders a packet readably for failure messages.
func dump(p wire.Packet) string {
	if p == nil {
		return "<nil>"
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Sprintf("%#v", p)
	}
	return fmt.Sprintf("%T%s", p, b)
}
