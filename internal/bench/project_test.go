package bench

import "testing"

// TestProjectLinear: the ASP probe's projection follows a rising cost, and
// projects flat noisy points to their mean rather than below zero (a
// 1.88, 2.02, 1.79 ms probe once projected -4.2 ms at a million).
func TestProjectLinear(t *testing.T) {
	pts := func(ys ...float64) []ASPProbePoint {
		var out []ASPProbePoint
		for i, y := range ys {
			out = append(out, ASPProbePoint{Members: 1000 << (2 * i), UpdateP50Ms: y})
		}
		return out
	}
	for _, c := range []struct {
		name   string
		points []ASPProbePoint
		want   float64
	}{
		{"flat and noisy", pts(1.88, 2.02, 1.79), 1.9},
		{"rising", pts(2, 5, 17), 1001},
		{"one point", pts(2), 0},
	} {
		if got := projectLinear(c.points, 1_000_000); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
