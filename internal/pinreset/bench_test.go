package pinreset_test

import (
	"testing"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// BenchmarkParseRequest is the body validation of one request.
func BenchmarkParseRequest(b *testing.B) {
	body := []byte(`{"loginId":"member@example.com","ci":"` + ci88 + `","currentPassword":"246810","newPassword":"581379","isResetPassword":false}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pinreset.ParseRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

const ci88 = "piwqLvwLWasIiEkntpg5bVG7Emxw6GodoI/y4lxAEiQe01ZOs87ESDvb+lMyXo4JkteecwTX6cA79bZhe0+byw=="
