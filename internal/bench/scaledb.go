package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	xargon2 "golang.org/x/crypto/argon2"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/third_party/argon2"
)

// monitoringCommands are the database commands that are not a client's
// work: the drivers' heartbeats and handshakes, and the bench's own
// serverStatus.
var monitoringCommands = map[string]bool{"hello": true, "isMaster": true, "ismaster": true, "ping": true,
	"serverStatus": true, "buildInfo": true, "buildinfo": true, "endSessions": true, "getParameter": true, "saslStart": true, "saslContinue": true}

// dbCommands is the database's count of the commands it ran, by name
// (FerretDB's serverStatus metrics.commands.<name>.total), monitoring left
// out.
func (r *scaleRun) dbCommands(ctx context.Context) (map[string]float64, error) {
	var out struct {
		Metrics struct {
			Commands map[string]struct {
				Total int64 `bson:"total"`
			} `bson:"commands"`
		} `bson:"metrics"`
	}
	if err := r.store.Database().RunCommand(ctx, bson.D{{Key: "serverStatus", Value: 1}}).Decode(&out); err != nil {
		return nil, fmt.Errorf("serverStatus: %w", err)
	}
	m := map[string]float64{}
	for name, c := range out.Metrics.Commands {
		if !monitoringCommands[name] {
			m[name] = float64(c.Total)
		}
	}
	return m, nil
}

// perRequest is the commands between two dbCommands per answered request:
// in all, and by command.
func perRequest(before, after map[string]float64, answered int) (float64, map[string]float64) {
	if answered == 0 {
		return 0, nil
	}
	by := map[string]float64{}
	total := 0.0
	for name, n := range after {
		if d := n - before[name]; d > 0 {
			by[name] = round2(d / float64(answered))
			total += d
		}
	}
	return round2(total / float64(answered)), by
}

// count is the exact number of documents in a collection of a store's
// database.
func count(ctx context.Context, store *mongostore.Store, coll string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, mongostore.MaintenanceTimeout)
	defer cancel()
	n, err := store.Database().Collection(coll).CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", coll, err)
	}
	return n, nil
}

// meanDocBytes is the mean BSON size of the member documents of an ASP.
func meanDocBytes(ctx context.Context, store *mongostore.Store, aspID string) (float64, error) {
	cur, err := store.Database().Collection(mongostore.MembersCollection).Aggregate(ctx, bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: "aspId", Value: aspID}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}, {Key: "bytes", Value: bson.D{{Key: "$avg", Value: bson.D{{Key: "$bsonSize", Value: "$$ROOT"}}}}}}}},
	})
	if err != nil {
		return 0, err
	}
	defer cur.Close(ctx)
	var out []struct {
		Bytes float64 `bson:"bytes"`
	}
	if err := cur.All(ctx, &out); err != nil || len(out) == 0 {
		return 0, err
	}
	return math.Round(out[0].Bytes), nil
}

// collSizes is collStats of the store's collections.
func (r *scaleRun) collSizes(ctx context.Context) (map[string]CollSize, error) {
	out := map[string]CollSize{}
	for _, name := range []string{mongostore.MembersCollection, mongostore.OutcomesCollection, mongostore.AuditCollection, mongostore.ParkedCollection} {
		var st struct {
			Count       int64 `bson:"count"`
			Size        int64 `bson:"size"`
			StorageSize int64 `bson:"storageSize"`
			IndexSize   int64 `bson:"totalIndexSize"`
			TotalSize   int64 `bson:"totalSize"`
		}
		if err := r.store.Database().RunCommand(ctx, bson.D{{Key: "collStats", Value: name}}).Decode(&st); err != nil {
			return nil, fmt.Errorf("collStats %s: %w", name, err)
		}
		n, err := count(ctx, r.store, name)
		if err != nil {
			return nil, err
		}
		out[name] = CollSize{Count: n, DataBytes: st.Size, StorageBytes: st.StorageSize, IndexBytes: st.IndexSize, TotalBytes: st.TotalSize}
	}
	return out, nil
}

// sizes fills the summary's sizes from collStats and dbStats.
func (r *scaleRun) sizes(ctx context.Context) error {
	s := &r.s
	colls, err := r.collSizes(ctx)
	if err != nil {
		return err
	}
	s.Collections = colls
	per := func(c CollSize) float64 {
		if c.Count == 0 {
			return 0
		}
		return math.Round(float64(c.TotalBytes) / float64(c.Count))
	}
	s.BytesPerMember = per(colls[mongostore.MembersCollection])
	s.BytesPerDecision = per(colls[mongostore.OutcomesCollection])
	s.BytesPerAuditRecord = per(colls[mongostore.AuditCollection])
	var db struct {
		TotalSize float64 `bson:"totalSize"`
	}
	if err := r.store.Database().RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Decode(&db); err != nil {
		return fmt.Errorf("dbStats: %w", err)
	}
	s.DatabaseBytes = int64(db.TotalSize)
	return nil
}

// procSampler samples the PostgreSQL processes under the infrastructure
// every 0.5 s until stop, which returns their peak summed proportional set
// size in MiB (0 where /proc cannot tell).
type procSampler struct {
	quit chan struct{}
	peak chan float64
}

func (r *scaleRun) sampleProcesses() procSampler {
	p := procSampler{quit: make(chan struct{}), peak: make(chan float64, 1)}
	root := r.infra.Process.Pid
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		peak := 0.0
		for {
			peak = max(peak, postgresPSSMB(root))
			select {
			case <-p.quit:
				p.peak <- math.Round(peak*10) / 10
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p procSampler) stop() float64 { close(p.quit); return <-p.peak }

// postgresPSSMB is the sum of the proportional set sizes of the processes
// named postgres under root, in MiB.
func postgresPSSMB(root int) float64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	pg := map[int]bool{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := procStat(p); ok {
			parent[p], pg[p] = st.ppid, st.comm == "postgres"
		}
	}
	total := 0.0
	for p := range pg {
		if !pg[p] {
			continue
		}
		for q := p; q > 1; q = parent[q] {
			if q == root {
				total += pssKB(p)
				break
			}
		}
	}
	return total / 1024
}

func pssKB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb
		}
	}
	return 0
}

// scaleASP names the i-th ASP of the large population; the first two are
// the large runs' and the sweep run's, registered in the bench's registry.
func scaleASP(i int) string { return fmt.Sprintf("%s%08d", scaleASPPrefix, i) }

// aspPattern is the loginId pattern of the i-th ASP's members: loginIds of
// its own, as a platform's ASPs mostly have.
func aspPattern(i int) string { return fmt.Sprintf("m%%07d@a%08d.scale.example", i) }

// writeScaleRegistry writes the sandbox's registry with the two ASPs of
// the large population the load signs as (public, made up, and only in
// the bench's data) into dir, and returns its path and their credentials.
func writeScaleRegistry(sandboxDir, dir string) (string, [2]kmheader.Credentials, error) {
	var creds [2]kmheader.Credentials
	b, err := os.ReadFile(filepath.Join(sandboxDir, "asps.json"))
	if err != nil {
		return "", creds, err
	}
	f, err := asp.Parse(b)
	if err != nil {
		return "", creds, err
	}
	for i := range creds {
		id := scaleASP(i)
		key := func(what string, n int) string {
			sum := sha256.Sum256([]byte("bench-scale " + what + " " + id))
			return (hex.EncodeToString(sum[:]) + hex.EncodeToString(sum[:]))[:n]
		}
		a := asp.ASP{ID: id, Name: "bench-scale " + id, Credentials: []asp.Credential{{AccessKey: key("access", 40), SecretKey: key("secret", 48)}}}
		f.ASPs = append(f.ASPs, a)
		creds[i] = kmheader.Credentials{ASPID: id, AccessKey: a.Credentials[0].AccessKey, SecretKey: []byte(a.Credentials[0].SecretKey), Scheme: a.Preferred()}
	}
	if _, err := asp.New(f.ASPs); err != nil {
		return "", creds, err
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", creds, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", creds, err
	}
	path := filepath.Join(dir, "asps.json")
	return path, creds, os.WriteFile(path, out, 0o600)
}

// hashCPUXCryptoAndPooled is the CPU time of one argon2id hash at the
// default parameters, in milliseconds, with golang.org/x/crypto/argon2's
// IDKey and with third_party/argon2 computing in memory from a sync.Pool
// (internal/pinhash's way), one after the other rounds times after a
// warm-up, under the worker's garbage collection (by memory limit only):
// alternating them gives both the same machine, and so a ratio that holds
// on a shared one.
func hashCPUXCryptoAndPooled(rounds int) (xcrypto, pooled float64) {
	defer workerGC(1)()
	const t, m, p, keyLen = 2, 19456, 1, 32
	password, salt := []byte("bench-scale password 0123456789a"), []byte("bench-scale salt")
	pool := sync.Pool{New: func() any { return argon2.NewMemory(m, p) }}
	impls := [2]func(){
		func() { xargon2.IDKey(password, salt, t, m, p, keyLen) },
		func() {
			mem := pool.Get().(*argon2.Memory)
			mem.IDKey(password, salt, t, m, p, keyLen)
			pool.Put(mem)
		},
	}
	for range min(rounds, 3) { // the pool's Memory, and the heap grown once
		impls[0]()
		impls[1]()
	}
	var cpu [2]float64
	for range rounds {
		for i, hash := range impls {
			start := selfCPUSeconds()
			hash()
			cpu[i] += selfCPUSeconds() - start
		}
	}
	ms := func(sec float64) float64 { return math.Round(sec*1000/float64(rounds)*100) / 100 }
	return ms(cpu[0]), ms(cpu[1])
}

// aspProbe grows one ASP, in a database of its own, through ProbeSizes
// (members inserted in bulk, 1,000 at a time), and at each size times the
// store's read and commit of its members (Store.Update, a decision that
// changes nothing but the version, as every decision makes one) beside the
// same for an ASP of 1,000 members, alternately. The database is dropped
// afterwards. It is the check that the members' unique index stays on one
// field (aspLogin, which the store's EnsureIndexes creates and InsertMembers
// fills): DocumentDB checks a compound unique index such as (aspId,
// loginId) against every entry of the ASP on each insert and commit, so
// the commit would grow with the ASP; on one field it stays flat.
func (r *scaleRun) aspProbe(ctx context.Context) ([]ASPProbePoint, error) {
	store, err := mongostore.Open(mongostore.Config{URI: r.mongoURI(), Database: scaleProbeDB})
	if err != nil {
		return nil, err
	}
	defer store.Close(context.Background())
	defer func() { _ = store.Database().Drop(context.Background()) }()
	if err := store.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	seed := func(aspID string, from, to int) (time.Duration, error) {
		var ms []pinreset.Member
		for i := from; i < to; i++ {
			login := fmt.Sprintf(scalePattern, i)
			ms = append(ms, pinreset.Member{ID: loadgen.MemberID(aspID, login), ASPID: aspID, LoginID: login, PINHash: r.pinHash, Version: 1, UpdatedAt: time.Now().UTC()})
		}
		start := time.Now()
		_, err := store.InsertMembers(ctx, ms)
		return time.Since(start), err
	}
	if _, err := seed(scaleControlASP, 0, 1000); err != nil {
		return nil, err
	}
	samples := max(r.cfg.ProbeSamples, 3)
	update := func(aspID string, i int) (float64, error) {
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		start := time.Now()
		_, err := store.Update(ctx, aspID, fmt.Sprintf(scalePattern, i), cid, func(m pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
			next := m
			next.Version++
			next.UpdatedAt = time.Now().UTC()
			return next, true, nil
		})
		return float64(time.Since(start).Microseconds()) / 1000, err
	}
	var points []ASPProbePoint
	size := 0
	for _, target := range r.cfg.ProbeSizes {
		var last time.Duration
		n := 0
		for size < target {
			step := min(1000, target-size)
			d, err := seed(scaleProbeASP, size, size+step)
			if err != nil {
				return nil, err
			}
			last, n, size = d, step, size+step
			r.logf("ASP probe: %d members in one ASP, the last %d inserted at %.0f/s", size, step, float64(step)/d.Seconds())
		}
		pt := ASPProbePoint{Members: size}
		if n > 0 {
			pt.InsertPerS = math.Round(float64(n) / last.Seconds())
		}
		var probe, control []float64
		for j := range samples {
			a, err := update(scaleProbeASP, j*size/samples)
			if err != nil {
				return nil, err
			}
			c, err := update(scaleControlASP, j*1000/samples)
			if err != nil {
				return nil, err
			}
			probe, control = append(probe, a), append(control, c)
		}
		pt.UpdateP50Ms, pt.ControlP50Ms = median(probe), median(control)
		pt.UpdateOverCtrl = ratio3(pt.UpdateP50Ms, pt.ControlP50Ms)
		r.logf("ASP probe: at %d members a member's read and commit takes %.2f ms (p50), %.2f ms in an ASP of 1,000", size, pt.UpdateP50Ms, pt.ControlP50Ms)
		points = append(points, pt)
	}
	return points, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return math.Round(s[len(s)/2]*100) / 100
}

// projectLinear is the least-squares line through the probe's update
// times against its sizes, at n members (0 with fewer than two sizes).
func projectLinear(points []ASPProbePoint, n int) float64 {
	if len(points) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range points {
		x, y := float64(p.Members), p.UpdateP50Ms
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	k := float64(len(points))
	den := k*sxx - sx*sx
	if den == 0 {
		return 0
	}
	// A cost does not fall as the ASP grows: a negative slope is the
	// noise of flat points, which projects to their mean, not below it.
	slope := max((k*sxy-sx*sy)/den, 0)
	return math.Round(((sy-slope*sx)/k+slope*float64(n))*10) / 10
}
