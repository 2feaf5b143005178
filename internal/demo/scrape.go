package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aurum/canary/queries/embedded"
)

// minScrapeTimeout is the shortest time a scrape may take.
const minScrapeTimeout = 2 * time.Second

// target is one scrape target, labelled as Prometheus labels its targets.
type target struct {
	job      string // the Service name
	instance string // host:port
	url      string // the /metrics URL
}

// scraper is the demo's Prometheus: it scrapes the services' /metrics at an
// interval and appends every sample to the embedded engine, stamped with
// the scrape's time, so that rate() and histogram_quantile() work on them
// as on a server's data.
type scraper struct {
	engine   *embedded.Engine
	client   *http.Client
	targets  []target
	interval time.Duration
	logger   *slog.Logger

	rounds atomic.Int64
}

// run scrapes at once and then every interval until ctx ends. The targets
// of one round are scraped in parallel; rounds never overlap, so the
// samples of a series reach the engine in time order.
func (s *scraper) run(ctx context.Context) {
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	for {
		s.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (s *scraper) round(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range s.targets {
		wg.Go(func() {
			if err := s.scrape(ctx, t); err != nil && ctx.Err() == nil {
				s.logger.Warn("scrape failed", "job", t.job, "err", err)
			}
		})
	}
	wg.Wait()
	if ctx.Err() == nil {
		s.rounds.Add(1)
	}
}

// scrape reads one target and appends its samples, and up: 1 when the
// scrape worked, 0 when it did not, as Prometheus records it.
func (s *scraper) scrape(ctx context.Context, t target) error {
	at := time.Now()
	// Prometheus caps a scrape at its interval, so that scrapes never
	// overlap. Rounds here never overlap anyway (a late round makes the
	// ticker drop a tick), so a short interval gets a longer timeout: on
	// a busy machine a scrape that takes a little longer is still worth
	// its samples, and a missing one leaves a gap in rate().
	sctx, cancel := context.WithTimeout(ctx, max(s.interval, minScrapeTimeout))
	defer cancel()
	samples, err := s.fetch(sctx, t)
	up := 1.0
	if err != nil {
		up = 0
	}
	base := map[string]string{"job": t.job, "instance": t.instance}
	var errs []error
	if ctx.Err() == nil {
		errs = append(errs, err)
		errs = append(errs, s.engine.Append(withLabels(base, map[string]string{model.MetricNameLabel: "up"}), at, up))
	}
	for _, smp := range samples {
		if err := s.engine.Append(withLabels(smp.labels, base), at, smp.value); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fetch GETs a target's text exposition and flattens it into samples.
func (s *scraper) fetch(ctx context.Context, t target) ([]sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, err
	}
	// The text format, which expfmt.TextParser reads; client_golang
	// would otherwise be free to pick another.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", t.url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", t.url, err)
	}
	var out []sample
	for _, mf := range families {
		out = append(out, flatten(mf)...)
	}
	return out, nil
}

// sample is one series' value in a scrape.
type sample struct {
	labels map[string]string
	value  float64
}

// flatten turns a metric family back into the series Prometheus stores for
// it: a histogram becomes its _bucket series (le), _sum and _count, a
// summary its quantile series, _sum and _count.
func flatten(mf *dto.MetricFamily) []sample {
	name := mf.GetName()
	var out []sample
	add := func(m *dto.Metric, metric string, v float64, extra ...string) {
		ls := make(map[string]string, len(m.GetLabel())+1+len(extra)/2)
		for _, lp := range m.GetLabel() {
			ls[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(extra); i += 2 {
			ls[extra[i]] = extra[i+1]
		}
		ls[model.MetricNameLabel] = metric
		out = append(out, sample{labels: ls, value: v})
	}
	for _, m := range mf.GetMetric() {
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			add(m, name, m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			add(m, name, m.GetGauge().GetValue())
		case dto.MetricType_UNTYPED:
			add(m, name, m.GetUntyped().GetValue())
		case dto.MetricType_SUMMARY:
			sm := m.GetSummary()
			for _, q := range sm.GetQuantile() {
				add(m, name, q.GetValue(), model.QuantileLabel, formatFloat(q.GetQuantile()))
			}
			add(m, name+"_sum", sm.GetSampleSum())
			add(m, name+"_count", float64(sm.GetSampleCount()))
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			count := float64(h.GetSampleCount())
			if h.SampleCountFloat != nil {
				count = h.GetSampleCountFloat()
			}
			inf := false
			for _, b := range h.GetBucket() {
				v := float64(b.GetCumulativeCount())
				if b.CumulativeCountFloat != nil {
					v = b.GetCumulativeCountFloat()
				}
				inf = inf || math.IsInf(b.GetUpperBound(), 1)
				add(m, name+"_bucket", v, model.BucketLabel, formatFloat(b.GetUpperBound()))
			}
			// The exposition may leave the +Inf bucket to the count.
			if !inf {
				add(m, name+"_bucket", count, model.BucketLabel, "+Inf")
			}
			add(m, name+"_sum", h.GetSampleSum())
			add(m, name+"_count", count)
		}
	}
	return out
}

// formatFloat writes an le or quantile value as the text exposition does.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// withLabels returns a copy of ls with extra added, as Prometheus adds its
// target labels (honor_labels false would rename clashes; the services
// expose no job or instance label, so there are none).
func withLabels(ls, extra map[string]string) map[string]string {
	out := make(map[string]string, len(ls)+len(extra))
	for k, v := range ls {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}
