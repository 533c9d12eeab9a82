package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL installation the database runs on: Debian's PostgreSQL 15
// with the DocumentDB, pg_cron and pgvector extensions that
// deployments/sandbox/install-engine.sh builds (make engine).
const (
	pgBinDir = "/usr/lib/postgresql/15/bin"
	pgLibDir = "/usr/lib/postgresql/15/lib"
	// pgStamp is what install-engine.sh leaves: the digests of the sources
	// it built. It names the template cluster, so new extensions get a new one.
	pgStamp = "/usr/share/postgresql/15/extension/pinreset-engine.sha256sums"
)

// clusterConf is appended to every cluster's postgresql.conf. DocumentDB
// needs its libraries preloaded and pg_cron in database postgres; the
// enable* switches are those FerretDB's own images set. pg_cron runs
// DocumentDB's jobs in background workers: over libpq it would connect to
// the socket directory of the run that created the extension, which a job
// keeps (cron.job.nodename). The server listens
// on a Unix socket only, given on the command line with the settings that
// name it (postgres.start). fsync and synchronous_commit stay on: a write
// FerretDB acknowledged survives a kill of any process.
const clusterConf = `
# pinreset sandbox (internal/sandbox/postgres.go)
listen_addresses = ''
shared_preload_libraries = 'pg_cron,pg_documentdb_core,pg_documentdb'
cron.database_name = 'postgres'
cron.use_background_workers = on
cron.log_run = off
max_worker_processes = 16
documentdb.enableCompact = true
documentdb.enableLetAndCollationForQueryMatch = true
documentdb.enableNowSystemVariable = true
documentdb.enableSortbyIdPushDownToPrimaryKey = true
documentdb.enableSchemaValidation = true
documentdb.enableBypassDocumentValidation = true
documentdb.enableUserCrud = true
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 64MB
log_min_messages = warning
log_line_prefix = '%m [%p] '
`

// templateVersion changes when clusterConf or the template's setup does,
// so that an old cached template is not reused.
const templateVersion = "2"

// postgres is one PostgreSQL server, a child of this process, on a cluster
// directory of its own.
type postgres struct {
	dir     string // the cluster (PGDATA)
	sockDir string // its Unix socket, private to this run
	cred    *syscall.Credential
	cmd     *exec.Cmd
	done    chan struct{} // closed when the server has exited
	exitErr error         // cmd.Wait's result, once done is closed
}

// pgUser is the operating-system user the server runs as: PostgreSQL
// refuses to run as root, so as root it runs as postgres (the user
// Debian's package creates); otherwise as the current user (nil).
func pgUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL does not run as root and there is no postgres user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// checkEngine says how to install the engine when it is missing.
func checkEngine() error {
	for _, f := range []string{filepath.Join(pgBinDir, "postgres"), filepath.Join(pgLibDir, "pg_documentdb.so")} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("the sandbox database needs PostgreSQL 15 with DocumentDB (%s is missing): run make engine "+
				"(deployments/sandbox/install-engine.sh, Debian) or point PINRESET_MONGO_URI at a MongoDB", f)
		}
	}
	return nil
}

// startPostgres starts the server on the cluster in dir, creating the
// cluster from the template when dir holds none, and returns once it
// accepts connections. A server left running on dir by an earlier process
// that was killed is stopped first (fast shutdown: it writes a checkpoint).
func startPostgres(ctx context.Context, dir string, log *slog.Logger) (*postgres, error) {
	if err := checkEngine(); err != nil {
		return nil, err
	}
	cred, err := pgUser()
	if err != nil {
		return nil, err
	}
	if err := reachable(filepath.Dir(dir), cred, log); err != nil {
		return nil, err
	}
	// The template and the socket go in the temporary directory: the sandbox
	// image's is on its data volume, which may not have it yet.
	if err := os.MkdirAll(os.TempDir(), 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		tmpl, err := clusterTemplate(ctx, cred, log)
		if err != nil {
			return nil, err
		}
		if err := copyCluster(tmpl, dir, cred); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("postgres cluster %s: %w", dir, err)
	}
	if err := stopSurvivor(dir, log); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(filepath.Dir(dir), "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("postgres log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	// A server whose predecessor was killed may find the old shared memory
	// still held by backends that have not yet noticed their postmaster's
	// death; they do within a second or two, so the start is retried.
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := runPostgres(ctx, dir, cred, logFile)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("start postgres on %s (log: %s): %w", dir, logFile.Name(), err)
		}
		log.Warn("postgres did not start; retrying", "dir", dir, "err", err)
		time.Sleep(250 * time.Millisecond)
	}
}

// runPostgres starts the server once and waits until it accepts connections.
func runPostgres(ctx context.Context, dir string, cred *syscall.Credential, logOut io.Writer) (*postgres, error) {
	// The socket goes in a short private directory: a socket path has at most
	// 107 bytes, and a test's data directory is longer than that allows.
	sock, err := os.MkdirTemp("", "pinreset-pg-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(sock, int(cred.Uid), int(cred.Gid)); err != nil {
			os.Remove(sock)
			return nil, err
		}
	}
	p := &postgres{dir: dir, sockDir: sock, cred: cred, done: make(chan struct{})}
	// DocumentDB and pg_cron connect back to the server over libpq: to the
	// socket, since there is no TCP listener. JIT off: it compiles any plan
	// the planner costs high, as DocumentDB's aggregations often are, for
	// 100 ms and more per query; the service's queries are all short.
	p.cmd = exec.Command(filepath.Join(pgBinDir, "postgres"), "-D", dir,
		"-c", "unix_socket_directories="+sock,
		"-c", "documentdb.localhost_connection_string=host="+sock,
		"-c", "cron.host="+sock, "-c", "jit=off")
	p.cmd.Stdout, p.cmd.Stderr = logOut, logOut
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	// The server goes down with this process (immediate shutdown, SIGQUIT,
	// on Linux): an operator's or a test's kill of the sandbox stops the
	// database, and the next start recovers from the log.
	dieWithParent(p.cmd.SysProcAttr, syscall.SIGQUIT)
	started := make(chan error, 1)
	go func() {
		// The parent-death signal follows the thread that started the child,
		// not the process: that thread must live as long as the child.
		runtime.LockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		os.Remove(sock)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		p.stop(syscall.SIGQUIT)
		return nil, err
	}
	return p, nil
}

// url is the server's connection string: superuser postgres over the
// private socket (trust authentication: only root and the server's user can
// reach the socket).
func (p *postgres) url() string {
	return "postgres://postgres@/postgres?host=" + url.QueryEscape(p.sockDir)
}

func (p *postgres) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, p.url())
		if err == nil {
			return c.Close(ctx)
		}
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited at start: %v", p.exitErr)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready within %v: %w", timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop shuts the server down with sig (SIGINT: fast, with a checkpoint;
// SIGQUIT: immediate, recovered at the next start) and waits for it; after
// 30 s it is killed.
func (p *postgres) stop(sig syscall.Signal) {
	defer os.RemoveAll(p.sockDir)
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(30 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stopSurvivor stops a server that still runs on dir (its postmaster.pid
// names a live process whose working directory is dir: the postmaster works
// in its data directory), left by a process that was killed before it could
// stop it. A postmaster.pid naming any other process is stale, and removed.
func stopSurvivor(dir string, log *slog.Logger) error {
	pidFile := filepath.Join(dir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return os.Remove(pidFile)
	}
	if !sameDir(fmt.Sprintf("/proc/%d/cwd", pid), dir) {
		// Not a server on dir (gone, or the number reused): PostgreSQL would
		// refuse to start while the number names a live process.
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	log.Warn("stopping a postgres left running on the data directory", "pid", pid, "dir", dir)
	proc, _ := os.FindProcess(pid)
	_ = proc.Signal(syscall.SIGINT)
	for deadline := time.Now().Add(30 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			_ = proc.Signal(syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func alive(pid int) bool {
	// A zombie (exited, not yet reaped by its new parent) is dead here.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func sameDir(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// reachable lets the server's user reach dir when it is not the current
// user: PostgreSQL must walk to its cluster, and a test's temporary
// directory, or the data directory itself, is private (0700) to root. Each
// directory on the way that others cannot search gets search permission
// for others (o+x: passing through, not listing).
func reachable(dir string, cred *syscall.Credential, log *slog.Logger) error {
	if cred == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != cred.Uid && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("let postgres reach %s: %w", dir, err)
			}
			log.Info("gave others search permission so that postgres reaches its cluster", "dir", d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// templateMu keeps the tests of one binary from building the template twice;
// a lock file does it across processes.
var templateMu sync.Mutex

// clusterTemplate returns a cluster with the extensions created, built once
// per installation of the engine and user and then copied for every new
// data directory: initdb and CREATE EXTENSION take about 4 s, a copy a
// fraction of a second. It is kept in the temporary directory, which the
// server's user can reach.
func clusterTemplate(ctx context.Context, cred *syscall.Credential, log *slog.Logger) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	key, err := templateKey()
	if err != nil {
		return "", err
	}
	base := filepath.Join(os.TempDir(), fmt.Sprintf("pinreset-pg-template-%d-%s", os.Geteuid(), key))
	cluster := filepath.Join(base, "pg")
	if _, err := os.Stat(filepath.Join(base, "ready")); err == nil {
		return cluster, nil
	}
	lock, err := os.OpenFile(base+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(base, "ready")); err == nil {
		return cluster, nil // another process built it meanwhile
	}
	start := time.Now()
	if err := os.RemoveAll(base); err != nil {
		return "", err
	}
	if err := os.Mkdir(base, 0o755); err != nil {
		return "", err
	}
	if err := os.Mkdir(cluster, 0o700); err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(cluster, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", err
		}
	}
	// No fsync here: the template is a cache; every copy is synced.
	initdb := exec.CommandContext(ctx, filepath.Join(pgBinDir, "initdb"), "-D", cluster, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf, err := os.OpenFile(filepath.Join(cluster, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return "", err
	}
	_, err = conf.WriteString(clusterConf)
	if err := errors.Join(err, conf.Close()); err != nil {
		return "", err
	}
	var out strings.Builder
	p, err := runPostgres(ctx, cluster, cred, &out)
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, out.String())
	}
	err = createExtension(ctx, p.url())
	p.stop(syscall.SIGINT)
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, out.String())
	}
	os.Remove(filepath.Join(cluster, "postmaster.opts"))
	if err := os.WriteFile(filepath.Join(base, "ready"), nil, 0o644); err != nil {
		return "", err
	}
	log.Info("built the database template", "dir", base, "took", time.Since(start).Round(time.Millisecond))
	return cluster, nil
}

func createExtension(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS documentdb CASCADE"); err != nil {
		return fmt.Errorf("create extension documentdb: %w", err)
	}
	return nil
}

// templateKey names the installed engine: the digests of the extension
// sources it was built from (or, installed otherwise, the server binary's
// and DocumentDB's files), and templateVersion.
func templateKey() (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, templateVersion)
	if b, err := os.ReadFile(pgStamp); err == nil {
		h.Write(b)
	} else {
		for _, f := range []string{filepath.Join(pgBinDir, "postgres"), filepath.Join(pgLibDir, "pg_documentdb.so")} {
			fi, err := os.Stat(f)
			if err != nil {
				return "", err
			}
			fmt.Fprintln(h, f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// copyCluster copies the template cluster to dir through a temporary
// sibling renamed into place, so that a start interrupted half-way leaves no
// half cluster behind. The copy is made durable before the server starts
// (its first acknowledged write relies on the files its log starts from)
// with one sync of the file system (syncFS) rather than a thousand fsyncs,
// which on a busy disk took 5-20 s.
func copyCluster(from, dir string, cred *syscall.Credential) error {
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		to := filepath.Join(tmp, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.Mkdir(to, fi.Mode().Perm()); err != nil {
				return err
			}
		} else if err := copyFile(path, to, fi.Mode().Perm()); err != nil {
			return err
		}
		if cred != nil {
			return os.Lchown(to, int(cred.Uid), int(cred.Gid))
		}
		return nil
	})
	if err == nil {
		err = syncFS(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err == nil {
		err = syncDir(filepath.Dir(dir))
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("new postgres cluster %s: %w", dir, err)
	}
	return nil
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
