package rollout

import (
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

// GroupSpec starts several rollouts as one group.
type GroupSpec struct {
	Name    string `json:"name"`
	Mode    string `json:"mode"`
	Members []Spec `json:"members"`
}

// group is a group as stored.
type group struct {
	Name    string   `json:"name"`
	Mode    string   `json:"mode"`
	Members []string `json:"members"`
}

// GroupStatus is a group and its members' statuses, with one status for
// the whole: rolled back if any member rolled back, paused or failed if
// any is, completed when all are, else progressing.
type GroupStatus struct {
	Name    string   `json:"name"`
	Mode    string   `json:"mode"`
	Status  Phase    `json:"status"`
	Members []Status `json:"members"`
}

// StartGroup starts every member as part of the group; idempotent like
// Start.
func (o *Orchestrator) StartGroup(ctx context.Context, gs GroupSpec) (GroupStatus, error) {
	if !rules.IsName(gs.Name) || len(gs.Members) == 0 {
		return GroupStatus{}, fmt.Errorf("%w: a group needs a Kubernetes-style name and members", ErrBadSpec)
	}
	if gs.Mode == "" {
		gs.Mode = ModeLockstep
	}
	if gs.Mode != ModeLockstep && gs.Mode != ModeIndependent {
		return GroupStatus{}, fmt.Errorf("%w: group mode %q (known: lockstep, independent)", ErrBadSpec, gs.Mode)
	}
	g := group{Name: gs.Name, Mode: gs.Mode}
	for _, m := range gs.Members {
		if slices.Contains(g.Members, m.Name) {
			return GroupStatus{}, fmt.Errorf("%w: member %s twice", ErrBadSpec, m.Name)
		}
		g.Members = append(g.Members, m.Name)
	}
	data, err := json.Marshal(g)
	if err != nil {
		return GroupStatus{}, err
	}
	// The group is stored first: a member must never tick without its
	// group's mode known.
	if _, err := o.o.Store.UpdateDocument(ctx, kindGroup, g.Name, func([]byte) ([]byte, error) { return data, nil }); err != nil {
		return GroupStatus{}, err
	}
	for _, m := range gs.Members {
		m.Group = g.Name
		if _, err := o.Start(ctx, m); err != nil {
			return GroupStatus{}, fmt.Errorf("member %s: %w", m.Name, err)
		}
	}
	return o.Group(ctx, g.Name)
}

func (o *Orchestrator) loadGroup(ctx context.Context, name string) (*group, error) {
	data, err := o.o.Store.Document(ctx, kindGroup, name)
	if errors.Is(err, runs.ErrDocumentNotFound) {
		return nil, fmt.Errorf("%w: group %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var g group
	return &g, json.Unmarshal(data, &g)
}

// Group returns a group's status.
func (o *Orchestrator) Group(ctx context.Context, name string) (GroupStatus, error) {
	g, err := o.loadGroup(ctx, name)
	if err != nil {
		return GroupStatus{}, err
	}
	gs := GroupStatus{Name: g.Name, Mode: g.Mode}
	counts := map[Phase]int{}
	for _, m := range g.Members {
		r, err := o.Get(ctx, m)
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
		if m.Spec.Name == r.Spec.Name {
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
	for _, name := range g.Members {
		m, err := o.Get(ctx, name)
		if err != nil {
			continue
		}
		gs.members = append(gs.members, m)
		if name != r.Spec.Name && (m.Phase == PhaseRollingBack || m.Phase == PhaseRolledBack) && gs.rolledBack == "" {
			gs.rolledBack = name
		}
	}
	return gs
}
