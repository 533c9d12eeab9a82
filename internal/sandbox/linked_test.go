package sandbox_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionBinariesLinkNoSandbox: the embedded servers (this package,
// FerretDB with its PostgreSQL driver, kfake) are for the sandbox and the
// tests; the production binaries link none of them.
func TestProductionBinariesLinkNoSandbox(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "../../cmd/ingress", "../../cmd/worker", "../../cmd/pwctl").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/kmwallet/pinreset/internal/sandbox",
			"github.com/FerretDB/",
			"github.com/jackc/pgx",
			"github.com/twmb/franz-go/pkg/kfake",
			"modernc.org/sqlite",
		} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("a production binary links %s", pkg)
			}
		}
	}
}
