package deployments

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxTrackedBytes bounds every file the repository tracks outside
// third_party/ (vendored upstream sources) and testdata/ (fuzz corpora,
// fixtures): anything larger is almost always build output that every
// clone would carry for ever.
const maxTrackedBytes = 1 << 20

// oversized returns the paths (relative to root) over maxTrackedBytes,
// outside third_party/ and testdata/ directories.
func oversized(root string, paths []string) ([]string, error) {
	var big []string
	for _, p := range paths {
		if p == "" || strings.HasPrefix(p, "third_party/") || strings.Contains("/"+p, "/testdata/") {
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, p))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet committed
		}
		if err != nil {
			return nil, err
		}
		if fi.Mode().IsRegular() && fi.Size() > maxTrackedBytes {
			big = append(big, p)
		}
	}
	return big, nil
}

// TestRepositoryHoldsNoBuildOutput fails on any tracked file over 1 MiB
// outside third_party/ and testdata/.
func TestRepositoryHoldsNoBuildOutput(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout (a source archive): no tracked files to check")
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	big, err := oversized(root, strings.Split(string(bytes.TrimRight(out, "\x00")), "\x00"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range big {
		t.Errorf("%s is tracked and over %d bytes: build output belongs in .gitignore, vendored sources under third_party/", p, maxTrackedBytes)
	}
}

func TestOversizedCatchesABinary(t *testing.T) {
	root := t.TempDir()
	write := func(p string, n int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sandbox", maxTrackedBytes+1)
	write("README.md", 100)
	write("third_party/big.tar.gz", 2*maxTrackedBytes)
	write("internal/x/testdata/corpus", 2*maxTrackedBytes)
	big, err := oversized(root, []string{"sandbox", "README.md", "third_party/big.tar.gz", "internal/x/testdata/corpus", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if len(big) != 1 || big[0] != "sandbox" {
		t.Fatalf("oversized = %v, want [sandbox]", big)
	}
}
