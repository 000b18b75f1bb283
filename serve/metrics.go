package serve

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the Prometheus metrics of a serving process (GET /metrics),
// registered on their own registry (not the global one), so that tests and
// several servers in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry

	requests    *prometheus.CounterVec   // by task and status code
	errors      *prometheus.CounterVec   // the same, status >= 400 only
	latency     *prometheus.HistogramVec // by task
	inflight    prometheus.Gauge
	batchRows   prometheus.Histogram
	batchTokens prometheus.Histogram
	batchTasks  prometheus.Histogram
	batchTime   prometheus.Histogram
	loads       *prometheus.CounterVec // task file loads by result
}

// NewMetrics creates the metrics with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "houlsby_serve_requests_total",
			Help: "Predict requests answered, by task and HTTP status code (task \"_unknown\" for names that are not loaded, \"_none\" before a task was read).",
		}, []string{"task", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "houlsby_serve_request_errors_total",
			Help: "Predict requests answered with an error status (>= 400), by task and status code.",
		}, []string{"task", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "houlsby_serve_request_duration_seconds",
			Help:    "Time from receiving a predict request to answering it, by task.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms .. 33 s
		}, []string{"task"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "houlsby_serve_inflight_requests",
			Help: "Predict requests being handled.",
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "houlsby_serve_batch_rows",
			Help:    "Inputs per forward pass.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256
		}),
		batchTokens: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "houlsby_serve_batch_tokens",
			Help:    "Padded tokens per forward pass (rows times the longest row).",
			Buckets: prometheus.ExponentialBuckets(16, 2, 12), // 16 .. 32768
		}),
		batchTasks: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "houlsby_serve_batch_tasks",
			Help:    "Distinct tasks per forward pass (more than 1: a mixed batch on the shared backbone).",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 32},
		}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "houlsby_serve_batch_duration_seconds",
			Help:    "Time of one forward pass.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "houlsby_serve_task_loads_total",
			Help: "Adapter files loaded from the adapters folder, by result (added, replaced, removed, refused).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.requests, m.errors, m.latency, m.inflight, m.batchRows, m.batchTokens, m.batchTasks, m.batchTime, m.loads)
	return m
}

// ObserveBatch records one forward pass; pass it as Options.OnBatch.
func (m *Metrics) ObserveBatch(s BatchStats) {
	m.batchRows.Observe(float64(s.Rows))
	m.batchTokens.Observe(float64(s.Tokens))
	m.batchTasks.Observe(float64(s.Tasks))
	m.batchTime.Observe(s.Duration.Seconds())
}

// Watch registers the gauges that read p: the queue depth and the loaded
// tasks.
func (m *Metrics) Watch(p *Predictor) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "houlsby_serve_queue_rows",
			Help: "Inputs waiting for a forward pass.",
		}, func() float64 { return float64(p.QueueLen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "houlsby_serve_tasks_loaded",
			Help: "Tasks being served.",
		}, func() float64 { return float64(len(p.Tasks())) }),
	)
}

// load counts one folder load result.
func (m *Metrics) load(result string) {
	if m != nil {
		m.loads.WithLabelValues(result).Inc()
	}
}

// request records one answered predict request.
func (m *Metrics) request(task string, code int, seconds float64) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(task, c).Inc()
	if code >= 400 {
		m.errors.WithLabelValues(task, c).Inc()
	}
	m.latency.WithLabelValues(task).Observe(seconds)
}
