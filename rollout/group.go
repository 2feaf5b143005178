package rollout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"
	"slices"

	"github.com/aurum/canary/rules"
)

// Group modes.
const (
	// ModeLockstep advances the members together: each step waits for all
	// of them, and one member rolling back rolls all back. For the same
	// version shipped to the CAISO, MISO and PJM pipelines at once.
	ModeLockstep = "lockstep"
	// ModeIndependent only reports the members together.
	ModeIndependent = "independent"
)

// GroupSpec starts several rollouts as one group. Members may be in other
// namespaces than the group (CAISO, MISO and PJM each have their own).
type GroupSpec struct {
	// Namespace and Name identify the group; an empty Namespace is the
	// first member's.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Mode      string `json:"mode"`
	Members   []Spec `json:"members"`
}

// group is a group as stored; Members are the members' keys
// (namespace/name).
type group struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Mode      string   `json:"mode"`
	Members   []string `json:"members"`
}

func (g *group) key() string { return g.Namespace + "/" + g.Name }

// GroupStatus is a group and its members' statuses, with one status for
// the whole: rolled back if any member rolled back, paused or failed if
// any is, completed when all are, else progressing.
type GroupStatus struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Mode      string   `json:"mode"`
	Status    Phase    `json:"status"`
	Members   []Status `json:"members"`
}

// StartGroup starts every member as part of the group; idempotent like
// Start.
func (o *Orchestrator) StartGroup(ctx context.Context, gs GroupSpec) (GroupStatus, error) {
	if len(gs.Members) > 0 && gs.Namespace == "" {
		gs.Namespace = cmp.Or(gs.Members[0].Namespace, gs.Members[0].Params["namespace"])
	}
	if !rules.IsName(gs.Namespace) || !rules.IsName(gs.Name) || len(gs.Members) == 0 || len(gs.Members) > maxMembers {
		return GroupStatus{}, fmt.Errorf("%w: a group needs a Kubernetes-style namespace and name and 1 to %d members", ErrBadSpec, maxMembers)
	}
	if gs.Mode == "" {
		gs.Mode = ModeLockstep
	}
	if gs.Mode != ModeLockstep && gs.Mode != ModeIndependent {
		return GroupStatus{}, fmt.Errorf("%w: group mode %q (known: lockstep, independent)", ErrBadSpec, gs.Mode)
	}
	g := group{Namespace: gs.Namespace, Name: gs.Name, Mode: gs.Mode}
	for i, m := range gs.Members {
		m.Namespace = cmp.Or(m.Namespace, m.Params["namespace"])
		gs.Members[i] = m
		if slices.Contains(g.Members, m.Key()) {
			return GroupStatus{}, fmt.Errorf("%w: member %s twice", ErrBadSpec, m.Key())
		}
		g.Members = append(g.Members, m.Key())
	}
	data, err := json.Marshal(g)
	if err != nil {
		return GroupStatus{}, err
	}
	// The group is stored first: a member must never tick without its
	// group's mode known.
	if _, err := o.o.Store.UpdateDocument(ctx, kindGroup, g.key(), func([]byte) ([]byte, error) { return data, nil }); err != nil {
		return GroupStatus{}, err
	}
	for _, m := range gs.Members {
		m.Group = g.key()
		if _, err := o.Start(ctx, m); err != nil {
			return GroupStatus{}, fmt.Errorf("member %s: %w", m.Key(), err)
		}
	}
	return o.Group(ctx, g.Namespace, g.Name)
}

// maxMembers bounds a group: it is ticked member by member.
const maxMembers = 64

func (o *Orchestrator) loadGroup(ctx context.Context, key string) (*group, error) {
	data, err := o.o.Store.Document(ctx, kindGroup, key)
	if errors.Is(err, runs.ErrDocumentNotFound) {
		return nil, fmt.Errorf("%w: group %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	var g group
	return &g, json.Unmarshal(data, &g)
}

// Group returns a group's status.
func (o *Orchestrator) Group(ctx context.Context, namespace, name string) (GroupStatus, error) {
	g, err := o.loadGroup(ctx, namespace+"/"+name)
	if err != nil {
		return GroupStatus{}, err
	}
	gs := GroupStatus{Namespace: g.Namespace, Name: g.Name, Mode: g.Mode}
	counts := map[Phase]int{}
	for _, m := range g.Members {
		r, err := o.get(ctx, m)
		if err != nil {
			return GroupStatus{}, err
		}
		gs.Members = append(gs.Members, r.Status())
		counts[r.Phase]++
	}
	switch {
	case counts[PhaseRolledBack]+counts[PhaseRollingBack] > 0:
		gs.Status = PhaseRolledBack
		if counts[PhaseRollingBack] > 0 {
			gs.Status = PhaseRollingBack
		}
	case counts[PhaseFailed] > 0:
		gs.Status = PhaseFailed
	case counts[PhasePaused] > 0:
		gs.Status = PhasePaused
	case counts[PhaseCompleted] == len(g.Members):
		gs.Status = PhaseCompleted
	default:
		gs.Status = PhaseProgressing
	}
	return gs, nil
}

// groupState is what a member's tick needs to know of its group.
type groupState struct {
	lockstep bool
	// rolledBack names a member rolling or rolled back, in lockstep.
	rolledBack string
	members    []*Rollout
}

// allReady reports whether every member has finished the step r is at.
func (g groupState) allReady(r *Rollout) bool {
	for _, m := range g.members {
		if m.Spec.Key() == r.Spec.Key() {
			continue
		}
		switch {
		case m.Phase == PhasePromoting || m.Phase == PhaseCompleted:
		case m.Phase == PhaseProgressing && (m.Step > r.Step || (m.Step == r.Step && m.Ready)):
		default:
			return false
		}
	}
	return true
}

func (o *Orchestrator) groupState(ctx context.Context, r *Rollout) groupState {
	if r.Spec.Group == "" {
		return groupState{}
	}
	g, err := o.loadGroup(ctx, r.Spec.Group)
	if err != nil || g.Mode != ModeLockstep {
		return groupState{}
	}
	gs := groupState{lockstep: true}
	for _, key := range g.Members {
		m, err := o.get(ctx, key)
		if err != nil {
			continue
		}
		gs.members = append(gs.members, m)
		if key != r.Spec.Key() && (m.Phase == PhaseRollingBack || m.Phase == PhaseRolledBack) && gs.rolledBack == "" {
			gs.rolledBack = key
		}
	}
	return gs
}
