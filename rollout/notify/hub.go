package notify

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
)

// maxTracked bounds the runs whose streaks the hub remembers; beyond it the
// oldest is forgotten (a streak then starts again).
const maxTracked = 10000

// maxOpen bounds the conditions remembered open per run: a latch per
// kind, an analysis condition or two, and one per degraded rule.
const maxOpen = 256

// Hub turns what happens to runs and rollouts into notifications and hands
// them to the outbox. It is a runs.Subscriber, and takes the
// orchestrator's events through Rollout and the step-downs' through
// StepDownDone. It never blocks on a delivery.
type Hub struct {
	policies func() *rules.Set
	out      Sink
	logger   *slog.Logger
	link     string
	panicked func(string)

	mu      sync.Mutex
	streaks map[string]*streak
	order   []string // run IDs, oldest first, to bound streaks
}

// Sink takes the notifications a Hub makes: the outbox, or a test's
// recorder.
type Sink interface {
	Enqueue(n Notification)
}

// streak is what the hub remembers of a run's latest analyses.
type streak struct {
	failing      bool
	failedSeq    uint64
	inconclusive int
	notifiedInc  bool
	// degraded counts, per rule, the analyses in a row it passed within
	// the margin; notified marks those it told about.
	degraded map[string]int
	notified map[string]bool
	// open are the run's conditions told as firing and not yet resolved,
	// by condition: what a new revision or the run's expiry resolves.
	open map[string]Notification
}

// HubOptions configure a Hub.
type HubOptions struct {
	// Policies returns the policies in service, for their notification
	// settings.
	Policies func() *rules.Set
	Sink     Sink
	// Link is the base URL of canary serve's API, for links in
	// notifications; empty leaves them out.
	Link string
	// Panicked, when set, counts a recovered panic.
	Panicked func(component string)
	Logger   *slog.Logger
}

// NewHub returns a hub.
func NewHub(o HubOptions) *Hub {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{policies: o.Policies, out: o.Sink, logger: o.Logger, link: strings.TrimSuffix(o.Link, "/"),
		panicked: o.Panicked, streaks: map[string]*streak{}}
}

// recover turns a panic of the hub into a log line and a count: telling
// about an event must never break the change that caused it.
func (h *Hub) recover(what string) {
	if p := recover(); p != nil {
		if h.panicked != nil {
			h.panicked("notify")
		}
		h.logger.Error("notification hub panicked; the event is not told", "event", what, "panic", fmt.Sprint(p))
	}
}

// policy returns a run's policy, or nil.
func (h *Hub) policy(name string) *rules.Policy {
	if h.policies == nil {
		return nil
	}
	set := h.policies()
	if set == nil {
		return nil
	}
	pol, err := set.Get(name)
	if err != nil {
		return nil
	}
	return pol
}

// severity is a kind's severity under a policy.
func severity(pol *rules.Policy, k Kind) Severity {
	if pol != nil {
		if s, ok := pol.Notifications.Severity[string(k)]; ok {
			return Severity(s)
		}
	}
	return DefaultSeverity[k]
}

// Notify reacts to a run's event. It never fails the change that caused it.
func (h *Hub) Notify(_ context.Context, e runs.Event) error {
	defer h.recover(string(e.Kind))
	if e.Run == nil {
		return nil
	}
	run := e.Run
	pol := h.policy(run.Policy)
	base := Notification{Namespace: run.Namespace, Name: run.Name, Revision: run.Revision, Policy: run.Policy, At: e.At,
		Link: h.runLink(run), By: e.By}
	switch e.Kind {
	case runs.EventAnalysis:
		if e.Answer != nil && e.Answer.Latched == "" {
			h.analysed(pol, run, e.Answer, base)
		}
	case runs.EventLatched:
		if e.Repeat || e.Latch == nil {
			return nil
		}
		h.send(pol, latched(base, run, e.Latch))
	case runs.EventLifted:
		if e.Latch == nil || e.Latch.Kind == runs.LatchPromote {
			return nil
		}
		n := base
		n.Kind, n.Resolved, n.Source, n.Reason = KindResumed, true, string(e.Origin), e.Latch.Reason
		n.Condition = map[runs.LatchKind]string{runs.LatchRollback: "rollback_latched ", runs.LatchPause: "paused "}[e.Latch.Kind] + run.ID()
		n.Summary = fmt.Sprintf("%s lifted on %s", e.Latch.Kind, run.ID())
		n.ID = "resumed/" + run.ID() + "/" + latchID(e.Latch) + "/" + strconv.FormatInt(e.At.UnixNano(), 36)
		h.send(pol, n)
	case runs.EventRevision:
		// The previous revision's analyses are over: its failing,
		// inconclusive or degraded conditions no longer hold. Its latches
		// stay told until they are lifted or the run expires.
		if e.Previous != "" {
			prev := run.Namespace + "/" + run.Name + "@" + e.Previous
			h.resolveAll(prev, func(cond string) bool {
				k := Kind(cond[:strings.IndexByte(cond+" ", ' ')])
				return k == KindAnalysisFailed || k == KindInconclusive || k == KindDegraded
			}, "superseded by revision "+run.Revision, e.At)
			h.mu.Lock()
			if st := h.streaks[prev]; st != nil {
				st.failing, st.inconclusive, st.notifiedInc = false, 0, false
				clear(st.degraded)
				clear(st.notified)
			}
			h.mu.Unlock()
		}
	case runs.EventExpired:
		h.resolveAll(run.ID(), nil, "the run expired", e.At)
		h.forget(run.ID())
	}
	return nil
}

// latched is the notification of a latch set on a run.
func latched(n Notification, run *runs.Run, l *runs.Latch) Notification {
	n.Source, n.Reason, n.By = string(l.Source), l.Reason, l.By
	switch l.Kind {
	case runs.LatchRollback:
		n.Kind, n.Condition = KindRollbackLatched, "rollback_latched "+run.ID()
		n.Summary = fmt.Sprintf("rollback latched on %s by %s", run.ID(), l.Source)
	case runs.LatchPause:
		n.Kind, n.Condition = KindPaused, "paused "+run.ID()
		n.Summary = fmt.Sprintf("%s paused by %s", run.ID(), l.Source)
	default:
		n.Kind = KindPromoted
		n.Summary = fmt.Sprintf("%s promoted by hand", run.ID())
	}
	n.ID = string(n.Kind) + "/" + run.ID() + "/" + latchID(l)
	return n
}

// Reconcile brings the notifications in line with the runs and rollouts
// after a start. A latch is stored before it is answered, its
// notification is queued right after and written within the store's
// flush interval: a crash in between would lose it, so every latch set
// within the dedup window is told again (the outbox sends each
// notification once, so the others are not sent twice). A current run
// whose last analysis failed is followed as failing, so that its next
// pass resolves it. And the conditions a sink still holds firing (canary's
// alerts in an Alertmanager) that no longer hold are resolved: a lift
// lost to a crash must not leave an alert firing for good. rollouts nil
// means they are not known, and leaves their conditions alone.
func (h *Hub) Reconcile(rs *runs.Runs, rollouts []*rollout.Rollout, now time.Time) {
	defer h.recover("reconcile")
	live := map[string]bool{}
	all, _ := rs.List("", 0)
	for _, run := range all {
		for _, l := range run.Latches {
			base := Notification{Namespace: run.Namespace, Name: run.Name, Revision: run.Revision, Policy: run.Policy,
				At: l.At, Link: h.runLink(run)}
			n := latched(base, run, &l)
			if n.Condition != "" {
				live[n.Condition] = true
			}
			if now.Sub(l.At) <= DedupWindow {
				h.send(h.policy(run.Policy), n)
			} else {
				h.track(n)
			}
		}
		if run.Current && run.LastVerdict == analysis.VerdictFail {
			cond := "analysis_failed " + run.ID()
			live[cond] = true
			h.mu.Lock()
			st := h.streakOf(run.ID())
			st.failing = true
			st.open[cond] = Notification{Kind: KindAnalysisFailed, Condition: cond, Namespace: run.Namespace, Name: run.Name,
				Revision: run.Revision, Policy: run.Policy, Link: h.runLink(run)}
			h.mu.Unlock()
		}
	}
	for _, r := range rollouts {
		switch r.Phase {
		case rollout.PhasePaused:
			live["paused rollout "+r.Spec.Key()] = true
		case rollout.PhaseFailed:
			live["rollout_failed "+r.Spec.Key()] = true
		}
	}
	if sr, ok := h.out.(interface {
		ResolveStale(live func(condition string) bool, at time.Time)
	}); ok {
		sr.ResolveStale(func(c string) bool {
			// Without the rollouts (nil), their conditions are left as
			// they are.
			return live[c] || (rollouts == nil && (strings.HasPrefix(c, "paused rollout ") || strings.HasPrefix(c, "rollout_failed ")))
		}, now)
	}
}

// latchID identifies a latch: the same latch seen again (a restart, a
// redelivery) is the same notification.
func latchID(l *runs.Latch) string {
	id := string(l.Source) + "/" + strconv.FormatInt(l.At.UnixNano(), 36)
	if l.Alert != "" {
		id += "/" + l.Alert
	}
	return id
}

// analysed follows a run's analyses: a failure starts a failing streak
// (told once), inconclusive ones in a row are told at the policy's count,
// and a rule passing close to its threshold for long enough is degraded.
func (h *Hub) analysed(pol *rules.Policy, run *runs.Run, a *runs.Answer, base Notification) {
	h.mu.Lock()
	st := h.streakOf(run.ID())
	var out []Notification
	seq := run.Evaluations
	base.Rules = ruleValues(a.Rules)
	switch a.Verdict {
	case analysis.VerdictFail:
		if !st.failing {
			st.failing, st.failedSeq = true, seq
			n := base
			n.Kind, n.Condition, n.Reason = KindAnalysisFailed, "analysis_failed "+run.ID(), a.Reason
			n.Summary = fmt.Sprintf("analysis of %s failed: decision %s", run.ID(), a.Decision)
			n.ID = "analysis_failed/" + run.ID() + "/" + strconv.FormatUint(seq, 10)
			out = append(out, n)
		}
		out = append(out, st.endInconclusive(run, base, seq)...)
	case analysis.VerdictInconclusive:
		st.inconclusive++
		after := rules.DefaultInconclusiveAfter
		if pol != nil {
			after = pol.Notifications.InconclusiveAfter
		}
		if st.inconclusive >= after && !st.notifiedInc {
			st.notifiedInc = true
			n := base
			n.Kind, n.Condition, n.Reason = KindInconclusive, "inconclusive "+run.ID(), a.Reason
			n.Summary = fmt.Sprintf("%d analyses of %s in a row were inconclusive", st.inconclusive, run.ID())
			n.ID = "inconclusive/" + run.ID() + "/" + strconv.FormatUint(seq, 10)
			out = append(out, n)
		}
	case analysis.VerdictPass:
		out = append(out, st.endInconclusive(run, base, seq)...)
		if st.failing {
			st.failing = false
			n := base
			n.Kind, n.Resolved, n.Condition, n.Reason = KindAnalysisFailed, true, "analysis_failed "+run.ID(), a.Reason
			n.Summary = fmt.Sprintf("analyses of %s pass again", run.ID())
			n.ID = "analysis_failed/" + run.ID() + "/" + strconv.FormatUint(st.failedSeq, 10) + "/resolved"
			out = append(out, n)
		}
	}
	out = append(out, st.degradation(pol, run, a, base, seq)...)
	h.mu.Unlock()
	for _, n := range out {
		h.send(pol, n)
	}
}

func (st *streak) endInconclusive(run *runs.Run, base Notification, seq uint64) []Notification {
	was := st.notifiedInc
	st.inconclusive, st.notifiedInc = 0, false
	if !was {
		return nil
	}
	n := base
	n.Kind, n.Resolved, n.Condition = KindInconclusive, true, "inconclusive "+run.ID()
	n.Summary = fmt.Sprintf("analyses of %s are conclusive again", run.ID())
	n.ID = "inconclusive/" + run.ID() + "/" + strconv.FormatUint(seq, 10) + "/resolved"
	return []Notification{n}
}

// degradation tracks the rules passing within the policy's margin of their
// thresholds.
func (st *streak) degradation(pol *rules.Policy, run *runs.Run, a *runs.Answer, base Notification, seq uint64) []Notification {
	if pol == nil || pol.Notifications.DegradedMargin <= 0 {
		return nil
	}
	var out []Notification
	for _, rr := range a.Rules {
		near := rr.Verdict == rules.OutcomePass && rr.Value != nil && rr.Threshold != nil &&
			within(float64(*rr.Value), float64(*rr.Threshold), pol.Notifications.DegradedMargin)
		cond := "degraded " + run.ID() + " " + rr.Name
		if !near {
			if st.notified[rr.Name] {
				n := base
				n.Kind, n.Resolved, n.Condition = KindDegraded, true, cond
				n.Summary = fmt.Sprintf("rule %s of %s is clear of its threshold again", rr.Name, run.ID())
				n.Reason = rr.Reason
				n.ID = "degraded/" + run.ID() + "/" + rr.Name + "/" + strconv.FormatUint(seq, 10) + "/resolved"
				out = append(out, n)
			}
			delete(st.degraded, rr.Name)
			delete(st.notified, rr.Name)
			continue
		}
		st.degraded[rr.Name]++
		if st.degraded[rr.Name] >= pol.Notifications.DegradedAnalyses && !st.notified[rr.Name] {
			st.notified[rr.Name] = true
			n := base
			n.Kind, n.Condition, n.Reason = KindDegraded, cond, rr.Reason
			n.Summary = fmt.Sprintf("rule %s of %s passed within %g%% of its threshold %d times in a row", rr.Name, run.ID(),
				100*pol.Notifications.DegradedMargin, st.degraded[rr.Name])
			n.ID = "degraded/" + run.ID() + "/" + rr.Name + "/" + strconv.FormatUint(seq, 10)
			out = append(out, n)
		}
	}
	return out
}

// within reports whether v is within margin (a share) of threshold t.
func within(v, t, margin float64) bool {
	if math.IsNaN(v) || math.IsNaN(t) || math.IsInf(v, 0) || math.IsInf(t, 0) {
		return false
	}
	if t == 0 {
		return math.Abs(v) <= margin
	}
	return math.Abs(v-t) <= margin*math.Abs(t)
}

func ruleValues(rs []analysis.RuleResult) []RuleValue {
	out := make([]RuleValue, 0, len(rs))
	for _, rr := range rs {
		rv := RuleValue{Name: rr.Name, Verdict: string(rr.Verdict), Reason: rr.Reason}
		if rr.Value != nil {
			v := float64(*rr.Value)
			rv.Value = &v
		}
		if rr.Threshold != nil {
			v := float64(*rr.Threshold)
			rv.Threshold = &v
		}
		out = append(out, rv)
	}
	return out
}

// streakOf returns the run's streak, remembering at most maxTracked runs.
// h.mu is held.
func (h *Hub) streakOf(id string) *streak {
	if st := h.streaks[id]; st != nil {
		return st
	}
	if len(h.order) >= maxTracked {
		delete(h.streaks, h.order[0])
		h.order = h.order[1:]
	}
	st := &streak{degraded: map[string]int{}, notified: map[string]bool{}, open: map[string]Notification{}}
	h.streaks[id] = st
	h.order = append(h.order, id)
	return st
}

func (h *Hub) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.streaks[id]; !ok {
		return
	}
	delete(h.streaks, id)
	for i, x := range h.order {
		if x == id {
			h.order = append(h.order[:i], h.order[i+1:]...)
			break
		}
	}
}

// send gives n its severity and queues it. A resolution has the severity
// of what it resolves, so that a route taking only critical notifications
// hears that its critical alert cleared.
func (h *Hub) send(pol *rules.Policy, n Notification) {
	k := n.Kind
	if n.Resolved {
		if ck := n.ConditionKind(); ck != "" {
			k = ck
		}
	}
	n.Severity = severity(pol, k)
	h.track(n)
	h.out.Enqueue(n)
}

// track remembers the run conditions told as firing, and forgets those
// resolved.
func (h *Hub) track(n Notification) {
	if n.Condition == "" || n.Rollout != "" || n.Revision == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streakOf(n.Target())
	if n.Resolved {
		delete(st.open, n.Condition)
	} else if len(st.open) < maxOpen {
		st.open[n.Condition] = n
	}
}

// resolveAll resolves a run's open conditions that keep returns true for
// (all when keep is nil), saying why.
func (h *Hub) resolveAll(id string, keep func(cond string) bool, why string, at time.Time) {
	h.mu.Lock()
	st := h.streaks[id]
	var out []Notification
	if st != nil {
		for cond, n := range st.open {
			if keep != nil && !keep(cond) {
				continue
			}
			r := n
			r.ID = "resolved/" + cond + "/" + strconv.FormatInt(at.UnixNano(), 36)
			r.Resolved, r.Reason, r.At, r.Rules, r.By, r.Source = true, why, at, nil, "", ""
			r.Summary = fmt.Sprintf("%s on %s is over: %s", strings.ReplaceAll(string(n.ConditionKind()), "_", " "), id, why)
			out = append(out, r)
		}
	}
	h.mu.Unlock()
	for _, n := range out {
		h.send(h.policy(n.Policy), n)
	}
}

func (h *Hub) runLink(run *runs.Run) string {
	if h.link == "" {
		return ""
	}
	return h.link + "/v1/runs/" + run.Namespace + "/" + run.Name + "?revision=" + run.Revision
}

func (h *Hub) rolloutLink(r *rollout.Rollout) string {
	if h.link == "" {
		return ""
	}
	return h.link + "/v1/rollouts/" + r.Spec.Key()
}

// Rollout reacts to one of the orchestrator's events: a rollout paused,
// resumed, promoted, completed, failed, rolled back, or a group member
// that failed. Pass it as the orchestrator's OnEvent.
func (h *Hub) Rollout(r *rollout.Rollout, e rollout.Event) {
	defer h.recover("rollout " + e.Type)
	if e.Type != "transition" || e.From == e.To {
		return
	}
	pol := h.policy(r.Spec.Policy)
	n := Notification{Namespace: r.Spec.Namespace, Name: r.Spec.Name, Revision: r.Spec.Version, Policy: r.Spec.Policy,
		Rollout: r.Spec.Key(), Group: r.Spec.Group, Reason: e.Reason, At: e.At, By: e.By, Link: h.rolloutLink(r)}
	if r.LastEvaluation != nil {
		n.Rules = ruleValues(r.LastEvaluation.Rules)
	}
	id := r.RunID() + "/" + strconv.FormatUint(e.Seq, 10)
	if e.From == rollout.PhasePaused || e.From == rollout.PhaseFailed {
		// Leaving a paused or failed phase, whichever way, clears its
		// condition: a failed rollout rolled back must not stay an alert.
		res := n
		res.Resolved = true
		res.Condition = map[rollout.Phase]string{rollout.PhasePaused: "paused rollout ", rollout.PhaseFailed: "rollout_failed "}[e.From] + r.Spec.Key()
		if e.To == rollout.PhaseProgressing || e.To == rollout.PhaseWarmup {
			res.Kind = KindResumed
			res.Summary = fmt.Sprintf("rollout %s resumed", r.RunID())
		} else {
			res.Kind = res.ConditionKind()
			res.Summary = fmt.Sprintf("rollout %s is no longer %s: now %s", r.RunID(), e.From, e.To)
		}
		res.ID = "resolved/" + id
		h.send(pol, res)
	}
	switch e.To {
	case rollout.PhasePaused:
		n.Kind, n.Condition = KindPaused, "paused rollout "+r.Spec.Key()
		n.Summary = fmt.Sprintf("rollout %s paused at step %d, %d%%", r.RunID(), e.Step+1, e.Weight)
	case rollout.PhasePromoting:
		n.Kind = KindPromoted
		n.Summary = fmt.Sprintf("rollout %s promoting", r.RunID())
	case rollout.PhaseCompleted:
		n.Kind = KindRolloutCompleted
		n.Summary = fmt.Sprintf("rollout %s completed", r.RunID())
	case rollout.PhaseFailed:
		n.Kind, n.Condition = KindRolloutFailed, "rollout_failed "+r.Spec.Key()
		n.Summary = fmt.Sprintf("rollout %s failed at step %d", r.RunID(), e.Step+1)
	case rollout.PhaseRollingBack:
		if r.Spec.Group == "" || strings.HasPrefix(e.Reason, "group member ") {
			return // the member that failed tells; the rest follow it
		}
		n.Kind = KindGroupMemberFailed
		n.Summary = fmt.Sprintf("group %s: member %s is rolling back", r.Spec.Group, r.Spec.Key())
		n.Reason = e.Reason + "; a lockstep group rolls every member back, an independent one goes on"
	default:
		return
	}
	n.ID = string(n.Kind) + "/" + id
	h.send(pol, n)
}

// StepDownDone tells that a rollback of a canary's traffic ended at 0:
// pass it as the traffic engine's OnDone. Every rollback that moves
// traffic, the orchestrator's and the kill switch's, ends there.
func (h *Hub) StepDownDone(sd *rollout.StepDown) {
	defer h.recover("stepdown done")
	if strings.Count(sd.Run, "@") != 1 {
		return
	}
	canary, rev, _ := strings.Cut(sd.Run, "@")
	ns, name, _ := strings.Cut(canary, "/")
	h.send(nil, Notification{
		ID: "rollback_done/" + sd.Run + "/" + strconv.FormatInt(sd.StartedAt.UnixNano(), 36), Kind: KindRollbackDone,
		Namespace: ns, Name: name, Revision: rev, Reason: sd.Reason, At: sd.UpdatedAt,
		Summary: fmt.Sprintf("rollback of %s done: the canary's traffic is at 0 (%s)", sd.Run, sd.Target.Key()),
	})
}
