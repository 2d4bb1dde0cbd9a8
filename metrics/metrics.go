// Package metrics exposes Aftercare's counters to Prometheus. It implements
// the service's Observer and adds gauges read from the store at scrape time
// (outbox depth, unacknowledged alerts), so a scrape is always current.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// Gauges reads values that live in the store.
type Gauges interface {
	OutboxDepth() (int, error)
	Escalations() ([]engine.Escalation, error)
}

// Commits reads the store's group-commit counts. When the Gauges given to
// New also implement it, /metrics shows commits and the writes they held:
// their ratio is the mean group size, the first figure to look at when
// steps get slow under load.
type Commits interface {
	CommitStats() store.CommitStats
}

// Metrics holds the collectors. Create it with New.
type Metrics struct {
	// reg is the registry Handler serves (shared by the clinics of a
	// Registry).
	reg         *prometheus.Registry
	in          *prometheus.CounterVec
	out         *prometheus.CounterVec
	sendErrors  *prometheus.CounterVec
	escalations *prometheus.CounterVec
	checkins    prometheus.Counter
	late        prometheus.Counter
	lateness    prometheus.Histogram
	txTime      prometheus.Histogram
	staffDown   *prometheus.GaugeVec
}

// New registers the collectors on a registry of their own, with the Go
// runtime's and the process's. g may be nil (no store gauges).
func New(g Gauges) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg, g)
	m.reg = reg
	return m
}

// Registry is the /metrics of a deployment serving several clinics: each
// clinic's collectors carry the label clinic="<id>" and nothing else that
// names the clinic; the Go runtime's and the process's are there once.
type Registry struct {
	reg *prometheus.Registry
}

// NewRegistry returns a Registry with the runtime and process collectors.
func NewRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg}
}

// Clinic registers one clinic's collectors, labelled with its id, and
// returns them; g may be nil. Each id may be registered once.
func (r *Registry) Clinic(id string, g Gauges) *Metrics {
	m := newMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"clinic": id}, r.reg), g)
	m.reg = r.reg
	return m
}

// Handler serves every clinic's metrics.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

func newMetrics(reg prometheus.Registerer, g Gauges) *Metrics {
	m := &Metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aftercare_messages_in_total",
			Help: "Patient messages and button presses received, by platform."}, []string{"platform"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aftercare_messages_out_total",
			Help: "Messages accepted by a platform, by platform and kind (reply, checkin, nudge, escalation, alert, notice)."}, []string{"platform", "kind"}),
		sendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aftercare_send_errors_total",
			Help: "Failed delivery attempts, by platform and reason (rate_limited for 429, error otherwise). Messages are retried."}, []string{"platform", "reason"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aftercare_escalations_total",
			Help: "Red-flag escalations, by level."}, []string{"level"}),
		checkins: prometheus.NewCounter(prometheus.CounterOpts{Name: "aftercare_checkins_due_total",
			Help: "Check-in timers that fell due and were processed."}),
		late: prometheus.NewCounter(prometheus.CounterOpts{Name: "aftercare_checkins_late_total",
			Help: "Check-in timers processed more than a minute after their due time (downtime, overload)."}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aftercare_checkin_lateness_seconds",
			Help: "How late check-in timers fire.", Buckets: []float64{0.1, 1, 10, 60, 600, 3600, 86400}}),
		txTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aftercare_store_step_seconds",
			Help:    "Time to commit one conversation step to the store (group commit included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		staffDown: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aftercare_staff_destination_unreachable",
			Help: "1 while the platform refuses a staff destination (bot removed, wrong id), by its configuration key; its alerts are kept, retried and sent to the other staff destinations."}, []string{"key"}),
	}
	reg.MustRegister(m.in, m.out, m.sendErrors, m.escalations, m.checkins, m.late, m.lateness, m.txTime, m.staffDown)
	if g != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aftercare_outbox_depth",
			Help: "Messages queued for delivery."}, func() float64 {
			n, err := g.OutboxDepth()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
		if c, ok := g.(Commits); ok {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "aftercare_store_commits_total",
				Help: "Write transactions committed (each with its fsyncs)."}, func() float64 {
				return float64(c.CommitStats().Commits)
			}))
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "aftercare_store_commit_writes_total",
				Help: "Writes (conversation steps, outbox updates) those transactions held; divided by commits, the mean group size."}, func() float64 {
				return float64(c.CommitStats().Writes)
			}))
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aftercare_alerts_unacknowledged",
			Help: "Urgent and emergency escalations still open (not acknowledged by staff)."}, func() float64 {
			es, err := g.Escalations()
			if err != nil {
				return -1
			}
			n := 0
			for _, e := range es {
				if e.Status == "open" && e.Level.Escalates() {
					n++
				}
			}
			return float64(n)
		}))
	}
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Received counts an inbound message.
func (m *Metrics) Received(platform string) { m.in.WithLabelValues(platform).Inc() }

// Step observes a store commit.
func (m *Metrics) Step(d time.Duration) { m.txTime.Observe(d.Seconds()) }

// Escalated counts an escalation.
func (m *Metrics) Escalated(l engine.Level) { m.escalations.WithLabelValues(l.String()).Inc() }

// CheckinFired counts a check-in timer and its lateness.
func (m *Metrics) CheckinFired(late time.Duration) {
	m.checkins.Inc()
	m.lateness.Observe(late.Seconds())
	if late > time.Minute {
		m.late.Inc()
	}
}

// Sent counts a delivered message.
func (m *Metrics) Sent(platform string, k engine.Kind) {
	m.out.WithLabelValues(platform, string(k)).Inc()
}

// SendFailed counts a failed delivery attempt.
func (m *Metrics) SendFailed(platform string, rateLimited bool) {
	reason := "error"
	if rateLimited {
		reason = "rate_limited"
	}
	m.sendErrors.WithLabelValues(platform, reason).Inc()
}

// StaffDestination sets the unreachable gauge of the staff destination
// configured under key. It implements service.StaffObserver.
func (m *Metrics) StaffDestination(key string, reachable bool) {
	v := 1.0
	if reachable {
		v = 0
	}
	m.staffDown.WithLabelValues(key).Set(v)
}
