package ingress

import (
	"sync"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// waiters pairs results read from password.results with the requests of this
// instance that wait for them.
type waiters struct {
	mu sync.Mutex
	m  map[string][]*waiter // by correlation id
}

type waiter struct {
	aspID, requestID string
	ch               chan pinreset.Result // buffered 1: deliver never blocks
}

func newWaiters() *waiters { return &waiters{m: map[string][]*waiter{}} }

// add registers interest in the result of the request requestID, which
// carries (aspID, correlationID). Call the returned func when done waiting.
// Register before publishing the command, so a fast result cannot slip past.
func (ws *waiters) add(aspID, correlationID, requestID string) (<-chan pinreset.Result, func()) {
	w := &waiter{aspID: aspID, requestID: requestID, ch: make(chan pinreset.Result, 1)}
	ws.mu.Lock()
	ws.m[correlationID] = append(ws.m[correlationID], w)
	ws.mu.Unlock()
	return w.ch, func() { ws.remove(correlationID, w) }
}

func (ws *waiters) remove(correlationID string, w *waiter) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	list := ws.m[correlationID]
	for i, x := range list {
		if x == w {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(ws.m, correlationID)
	} else {
		ws.m[correlationID] = list
	}
}

// deliver hands r to the waiter of its request. A result without a request
// id (a command too broken to say which request it was) goes to every waiter
// of its correlation id and ASP, or of its correlation id when it has no ASP.
func (ws *waiters) deliver(r pinreset.Result) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.m[r.CorrelationID] {
		if r.RequestID != "" && r.RequestID != w.requestID {
			continue
		}
		if r.ASPID != "" && r.ASPID != w.aspID {
			continue
		}
		select {
		case w.ch <- r:
		default: // already has its result: a redelivered duplicate
		}
	}
}

// len is the number of correlation ids waited for.
func (ws *waiters) len() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.m)
}
