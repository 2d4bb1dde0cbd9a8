package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// TestErrorsAreStorages checks that the bbolt store's sentinel errors are
// the very values of package storage, so errors.Is matches them whichever
// package a caller names them from, and whichever backend returned them.
func TestErrorsAreStorages(t *testing.T) {
	for _, c := range []struct {
		name      string
		bolt, any error
	}{
		{"ErrNotFound", store.ErrNotFound, storage.ErrNotFound},
		{"ErrSkip", store.ErrSkip, storage.ErrSkip},
		{"ErrOwner", store.ErrOwner, storage.ErrOwner},
		{"ErrCorrupt", store.ErrCorrupt, storage.ErrCorrupt},
		{"ErrSessionUnknown", store.ErrSessionUnknown, storage.ErrSessionUnknown},
		{"ErrLoginUnknown", store.ErrLoginUnknown, storage.ErrLoginUnknown},
		{"ErrLoginExpired", store.ErrLoginExpired, storage.ErrLoginExpired},
		{"ErrLoginUsed", store.ErrLoginUsed, storage.ErrLoginUsed},
	} {
		wrapped := fmt.Errorf("op: %w", c.any)
		if c.bolt != c.any || !errors.Is(wrapped, c.bolt) {
			t.Errorf("store.%s is not storage.%s", c.name, c.name)
		}
	}
	// A type alias, not a copy: a storage.Step is a store.Step.
	var st store.Step = storage.Step{Due: &storage.Due{Owner: store.PatientOwner("p")}}
	if st.Due.Owner != storage.PatientOwner("p") {
		t.Error("store.PatientOwner differs from storage.PatientOwner")
	}
}
