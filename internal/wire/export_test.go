package wire

import (
	"encoding/json"
	"reflect"
	"strings"
)

// AssociatedData is the associated data the seal of value must be made
// under, for tests that write commands by hand. What does not decode is left
// at its zero value: such a command is refused before it is opened.
func AssociatedData(value []byte) []byte {
	var m command
	_ = json.Unmarshal(value, &m)
	return m.associatedData()
}

// ClearFields are the JSON names of every field of a command but the sealed
// part: what associatedData must bind. Read from the struct itself, so a
// field added later is in the list without anyone remembering to add it.
func ClearFields() []string {
	var names []string
	t := reflect.TypeOf(command{})
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "sealed" {
			names = append(names, name)
		}
	}
	return names
}
