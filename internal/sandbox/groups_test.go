package sandbox

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// TestDeadJoinerExpires: a consumer killed while it waits for its
// JoinGroup answer leaves the group after its session timeout, as on Kafka
// (whose coordinator schedules every member's expiry when it completes the
// join, delivered or not). Upstream kfake kept such a member for good,
// holding its share of the partitions with nobody fetching them: a worker
// SIGKILLed during its join stopped a third of password.commands
// (third_party/kfake/PATCHES.md). Judged from the outside: the group's
// members over the wire, and a message on every partition consumed.
func TestDeadJoinerExpires(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr := freeaddr.For(t)
	in, err := StartInfra(ctx, InfraConfig{DataDir: t.TempDir(), KafkaAddr: addr, NoMongo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	const topic, group, partitions = "joins", "joiners", 4
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// A live member, heartbeating every 250 ms.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: group, Topic: topic,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 250 * time.Millisecond, RebalanceTimeout: 5 * time.Second,
		MaxWait: 100 * time.Millisecond})
	defer r.Close()
	waitMembers(t, addr, group, 1, 30*time.Second)

	// Four more that ask to join, then die before the answer. (Whether
	// upstream kfake noticed a death in time was a coin toss per member:
	// four make the old behaviour fail this test 15 times in 16.)
	const ghosts = 4
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 5 // the last before the flexible encoding; v4+ asks a new member to come back with its id
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = group, 2000, 5000, "consumer"
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
	for range ghosts {
		ghost := rawConn(t, addr)
		join.MemberID = ""
		first := ghost.do(t, join).(*kmsg.JoinGroupResponse) // v4+: "member id required", with the id
		join.MemberID = first.MemberID
		ghost.send(t, join)
		ghost.Close()
	}

	// They are counted into the next generation, then must expire.
	waitMembers(t, addr, group, 1+ghosts, 30*time.Second)
	waitMembers(t, addr, group, 1, 20*time.Second) // 2 s sessions, a rebalance

	// And every partition is fetched again.
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	for p := range partitions {
		if err := w.WriteMessages(ctx, kafka.Message{Value: []byte(fmt.Sprint(p))}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int]bool{}
	for len(seen) < partitions {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("partitions read %v: %v", seen, err)
		}
		seen[m.Partition] = true
	}
}

// waitMembers waits until the group has n members (DescribeGroups), for
// at most within.
func waitMembers(t *testing.T, addr, group string, n int, within time.Duration) {
	t.Helper()
	c := rawConn(t, addr)
	defer c.Close()
	last := -1
	if !waitfor.Every(100*time.Millisecond, within, func() bool {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Version = 4 // the last before the flexible encoding
		req.Groups = []string{group}
		resp := c.do(t, req).(*kmsg.DescribeGroupsResponse)
		if len(resp.Groups) == 1 {
			last = len(resp.Groups[0].Members)
		}
		return last == n
	}) {
		t.Fatalf("group %s: %d members, want %d", group, last, n)
	}
}

// raw is a Kafka protocol connection on which the test decides when a
// request's answer is read, and at which version it is sent.
type raw struct {
	net.Conn
	rd   *bufio.Reader
	corr int32
}

func rawConn(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &raw{Conn: c, rd: bufio.NewReader(c)}
}

// send writes req, at its version (one before the flexible encoding:
// this header is version 1), without reading its answer.
func (c *raw) send(t *testing.T, req kmsg.Request) {
	t.Helper()
	c.corr++
	b := binary.BigEndian.AppendUint32(nil, 0) // size, then the header
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(c.corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len("test")))
	b = append(b, "test"...)
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// do sends req and reads its answer.
func (c *raw) do(t *testing.T, req kmsg.Request) kmsg.Response {
	t.Helper()
	c.send(t, req)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c.rd, size[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.rd, body); err != nil {
		t.Fatal(err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body[4:]); err != nil { // after the correlation id
		t.Fatal(err)
	}
	return resp
}
