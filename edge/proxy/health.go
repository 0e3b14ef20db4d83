package proxy

import (
	"encoding/json"
	"io"
)

func writeHealth(w io.Writer, h Health) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(h)
}
