package runs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aurum/canary/rules"
)

// Alert is one alert of an Alertmanager notification.
type Alert struct {
	Status      string
	Labels      map[string]string
	Annotations map[string]string
	StartsAt    time.Time
	Fingerprint string
}

// AlertReport says what a delivery changed.
type AlertReport struct {
	// Matched counts alert and run pairs that matched a policy's alerts.
	Matched int
	// Latched and Lifted count latches set and lifted.
	Latched, Lifted int
}

type alertMatcher struct {
	equal  map[string]string
	regex  map[string]*regexp.Regexp
	action rules.Action
}

// match is one alert that matched one run of a canary.
type match struct {
	revision string
	alert    Alert
	action   rules.Action
}

// Alerts applies a delivery of alerts. A firing alert matching a run's
// policy latches that policy's action on the run; every kept revision of
// the canary is matched, not only the current one, so a call that
// switched revisions cannot steer an alert away from the revision it
// concerns. A resolved alert lifts the pause it latched; a rollback stays
// until a manual resume or promote. A redelivery changes nothing, but is
// published again (Repeat) so a reaction that failed the first time, such
// as cutting traffic, is retried. Every change is durable before Alerts
// returns; an error wrapping ErrReaction means the latches stand but a
// reaction failed.
func (r *Runs) Alerts(ctx context.Context, set *rules.Set, alerts []Alert) (AlertReport, error) {
	var report AlertReport
	matched := map[string][]match{}
	r.mu.RLock()
	entries := slices.Collect(maps.Values(r.canaries))
	r.mu.RUnlock()
	for _, e := range entries {
		s := e.snap.Load()
		if s == nil {
			continue
		}
		byRev := s.alertMatchers(set, r.logger)
		for _, run := range s.canary.Runs {
			for _, a := range alerts {
				for _, m := range byRev[run.Revision] {
					if m.matches(a.Labels) {
						k := s.canary.Key()
						matched[k] = append(matched[k], match{revision: run.Revision, alert: a, action: m.action})
						report.Matched++
					}
				}
			}
		}
	}
	if len(matched) == 0 {
		return report, nil
	}

	now := r.now()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for k, ms := range matched {
		ns, name := splitKey(k)
		wg.Go(func() {
			latched, lifted, err := r.applyAlerts(ctx, ns, name, ms, now)
			mu.Lock()
			defer mu.Unlock()
			report.Latched += latched
			report.Lifted += lifted
			if err != nil {
				errs = append(errs, fmt.Errorf("canary %s: %w", k, err))
			}
		})
	}
	wg.Wait()
	// Each error says which canary and what failed; an error that is a
	// failed reaction wraps ErrReaction already, so the joined error is
	// one only when every part is.
	return report, errors.Join(errs...)
}

// applyAlerts applies one canary's matches in one change, recovering a
// panic into an error so one bad delivery cannot take the process down.
func (r *Runs) applyAlerts(ctx context.Context, ns, name string, ms []match, now time.Time) (latched, lifted int, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked("alerts")
			r.logger.Error("applying alerts panicked", "canary", key(ns, name), "panic", fmt.Sprint(p))
			err = fmt.Errorf("applying alerts panicked: %v", p)
		}
	}()
	_, err = r.change(ctx, ns, name, false, func(cur *Canary) (mutation, error) {
		latched, lifted = 0, 0
		if cur == nil {
			return mutation{}, nil // deleted meanwhile
		}
		c := cur
		var m mutation
		for _, rev := range revisionsOf(ms) {
			stored := c.Run(rev)
			if stored == nil {
				continue // dropped meanwhile
			}
			run := stored.clone()
			changed := false
			for _, x := range ms {
				if x.revision != rev {
					continue
				}
				fp := cmp.Or(x.alert.Fingerprint, fingerprint(x.alert.Labels))
				if x.alert.Status == "resolved" {
					kept := run.Latches[:0:0]
					for _, l := range run.Latches {
						if l.Kind == LatchPause && l.Source == SourceAlert && l.Alert == fp {
							m.events = append(m.events, Event{Kind: EventLifted, At: now, Origin: OriginAlertmanager, Run: run, Latch: &l})
							lifted++
							changed = true
							continue
						}
						kept = append(kept, l)
					}
					run.Latches = kept
					continue
				}
				l := Latch{Kind: LatchKind(x.action), Source: SourceAlert, Alert: fp, At: now, Reason: alertReason(x.alert)}
				held, added := run.addLatch(l)
				if added {
					latched++
					changed = true
				} else if !held {
					changed = true // refused: the count changed
					r.logger.Warn("latch refused: the run holds the most latches of its kind", "run", run.ID(), "kind", l.Kind, "max", MaxLatches)
				}
				if held {
					m.events = append(m.events, Event{Kind: EventLatched, At: now, Origin: OriginAlertmanager, Run: run, Latch: &l, Repeat: !added})
				}
			}
			if changed {
				run.UpdatedAt = now
				c = c.with(run)
				m.durable = true
			}
		}
		if m.durable {
			c.UpdatedAt = now
			m.canary = c
		}
		return m, nil
	})
	return latched, lifted, err
}

// revisionsOf lists the revisions the matches concern, in order.
func revisionsOf(ms []match) []string {
	var out []string
	for _, m := range ms {
		if !slices.Contains(out, m.revision) {
			out = append(out, m.revision)
		}
	}
	return out
}

// splitKey splits a canary key: a namespace holds no '/'.
func splitKey(k string) (ns, name string) {
	ns, name, _ = strings.Cut(k, "/")
	return ns, name
}

// alertReason is the latch reason of a firing alert, cut to MaxReason.
func alertReason(a Alert) string {
	reason := "alert " + cmp.Or(a.Labels["alertname"], "(unnamed)") + " firing"
	if s := cmp.Or(a.Annotations["summary"], a.Annotations["description"]); s != "" {
		reason += ": " + s
	}
	return truncate(reason)
}

// fingerprint identifies an alert by its labels when the sender gave no
// fingerprint, as Alertmanager computes its own.
func fingerprint(labels map[string]string) string {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// alertMatchers renders the alert matchers of every run of the snapshot,
// by revision, once per snapshot and policy set.
func (s *snapshot) alertMatchers(set *rules.Set, logger *slog.Logger) map[string][]alertMatcher {
	render := func() map[string][]alertMatcher {
		out := map[string][]alertMatcher{}
		for _, run := range s.canary.Runs {
			if run.Policy == "" {
				continue
			}
			pol, err := set.Get(run.Policy)
			if err != nil || len(pol.Alerts) == 0 {
				continue
			}
			out[run.Revision] = renderMatchers(pol, run, logger)
		}
		return out
	}
	s.once.Do(func() {
		s.set = set
		s.matchers = render()
	})
	if s.set != set {
		// The policies were reloaded since: render afresh, uncached.
		return render()
	}
	return s.matchers
}

func renderMatchers(pol *rules.Policy, run *Run, logger *slog.Logger) []alertMatcher {
	var out []alertMatcher
	params, err := pol.ResolveParams(run.Params)
	if err != nil {
		logger.Warn("run params no longer fit its policy; its alerts are not matched", "run", run.ID(), "policy", pol.Name, "err", err)
		return nil
	}
	for _, a := range pol.Alerts {
		equal, regex, err := a.RenderMatchers(params)
		if err != nil {
			logger.Warn("alert matcher does not render", "run", run.ID(), "policy", pol.Name, "err", err)
			continue
		}
		m := alertMatcher{equal: equal, action: a.Action, regex: map[string]*regexp.Regexp{}}
		ok := true
		for name, src := range regex {
			re, err := regexp.Compile("^(?:" + src + ")$")
			if err != nil {
				logger.Warn("alert regex does not compile", "run", run.ID(), "policy", pol.Name, "label", name, "err", err)
				ok = false
				break
			}
			m.regex[name] = re
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func (m alertMatcher) matches(labels map[string]string) bool {
	for k, v := range m.equal {
		if labels[k] != v {
			return false
		}
	}
	for k, re := range m.regex {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}
