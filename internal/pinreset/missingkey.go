package pinreset

import "errors"

// ErrMissingKey marks a failure that deploying a key fixes: a command sealed
// under a seal key id, or a PIN hashed under a pepper id, that this process
// does not hold (a rollout in the wrong order). It is transient: the command
// waits, parked, until the key is there, and never becomes an outcome.
var ErrMissingKey = errors.New("key not deployed here")

// MissingKeyError says which kind of key is missing. errors.Is(err,
// ErrMissingKey) holds for it.
type MissingKeyError struct {
	Kind string // "seal" or "pepper"
	Err  error  // the cause, naming the key id (never key material)
}

func (e *MissingKeyError) Error() string { return "missing " + e.Kind + " key: " + e.Err.Error() }

// Unwrap lets errors.Is find both ErrMissingKey and the cause.
func (e *MissingKeyError) Unwrap() []error { return []error{ErrMissingKey, e.Err} }
