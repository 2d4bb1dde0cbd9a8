package store

import (
	"encoding/json"

	"github.com/aftercare-clinic/aftercare/engine"
)

// EncodeState encodes a conversation state as the states bucket keeps it.
func EncodeState(st engine.State) ([]byte, error) { return json.Marshal(st) }
