package importer

import (
	"encoding/json"
	"fmt"
	"text/template/parse"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keptn's metrics operator is not a dependency (the project is winding
// down, and its module brings its controller's world): these are minimal
// strict structs of metrics.keptn.sh/v1, with the fields an
// AnalysisDefinition and an AnalysisValueTemplate have.

// KeptnAnalysisDefinition is a metrics.keptn.sh/v1 AnalysisDefinition.
type KeptnAnalysisDefinition struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Objectives []KeptnObjective `json:"objectives"`
		TotalScore struct {
			PassPercentage    int `json:"passPercentage"`
			WarningPercentage int `json:"warningPercentage"`
		} `json:"totalScore"`
	} `json:"spec"`
	Status json.RawMessage `json:"status,omitempty"`
}

// KeptnObjective is one objective of an AnalysisDefinition.
type KeptnObjective struct {
	AnalysisValueTemplateRef KeptnRef `json:"analysisValueTemplateRef"`
	Target                   struct {
		Failure *KeptnOperator `json:"failure,omitempty"`
		Warning *KeptnOperator `json:"warning,omitempty"`
	} `json:"target,omitempty"`
	Weight       int  `json:"weight,omitempty"`
	KeyObjective bool `json:"keyObjective,omitempty"`
}

// KeptnRef names an object, in the referrer's namespace by default.
type KeptnRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// KeptnOperator is one criterion: exactly one field is set.
type KeptnOperator struct {
	LessThan           *KeptnValue `json:"lessThan,omitempty"`
	LessThanOrEqual    *KeptnValue `json:"lessThanOrEqual,omitempty"`
	GreaterThan        *KeptnValue `json:"greaterThan,omitempty"`
	GreaterThanOrEqual *KeptnValue `json:"greaterThanOrEqual,omitempty"`
	EqualTo            *KeptnValue `json:"equalTo,omitempty"`
	InRange            *KeptnRange `json:"inRange,omitempty"`
	NotInRange         *KeptnRange `json:"notInRange,omitempty"`
}

// KeptnValue is a fixed value (a Kubernetes quantity: 500m is 0.5).
type KeptnValue struct {
	FixedValue resource.Quantity `json:"fixedValue"`
}

// KeptnRange is a range with both bounds included.
type KeptnRange struct {
	LowBound  resource.Quantity `json:"lowBound"`
	HighBound resource.Quantity `json:"highBound"`
}

// KeptnValueTemplate is a metrics.keptn.sh/v1 AnalysisValueTemplate.
type KeptnValueTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Provider KeptnRef `json:"provider"`
		Query    string   `json:"query"`
	} `json:"spec"`
	Status json.RawMessage `json:"status,omitempty"`
}

// KeptnObjects are the Keptn objects of the input.
type KeptnObjects struct {
	Definitions []KeptnDefinition
	Templates   []KeptnValueTemplate
}

// KeptnDefinition is an AnalysisDefinition and the file it came from.
type KeptnDefinition struct {
	File string
	KeptnAnalysisDefinition
}

// DecodeKeptn reads the AnalysisDefinitions and AnalysisValueTemplates of
// a manifest file strictly into objs. Other objects are skipped with a
// note.
func DecodeKeptn(file string, data []byte, objs *KeptnObjects) ([]Note, error) {
	docs, err := documents(file, data)
	if err != nil {
		return nil, err
	}
	var ns notes
	for _, d := range docs {
		switch {
		case d.apiVersion == "metrics.keptn.sh/v1" && d.kind == "AnalysisDefinition":
			var a KeptnAnalysisDefinition
			if err := d.strict(file, &a); err != nil {
				return nil, err
			}
			objs.Definitions = append(objs.Definitions, KeptnDefinition{File: file, KeptnAnalysisDefinition: a})
		case d.apiVersion == "metrics.keptn.sh/v1" && d.kind == "AnalysisValueTemplate":
			var t KeptnValueTemplate
			if err := d.strict(file, &t); err != nil {
				return nil, err
			}
			objs.Templates = append(objs.Templates, t)
		default:
			ns.add(fmt.Sprintf("%s:%d", file, d.line), "%s %s %s is not a metrics.keptn.sh/v1 AnalysisDefinition or AnalysisValueTemplate: skipped", d.apiVersion, d.kind, d.name)
		}
	}
	return ns.list, nil
}

// FromKeptn makes one policy of each AnalysisDefinition, scored as Keptn
// scores: each objective is a group weighted as the objective, whose rules
// give it all its points when it passes, half when it only meets its
// warning target and none when it meets its failure target; a key
// objective that fails fails the analysis; totalScore's pass and warning
// percentages are the scoring's pass and marginal scores.
func FromKeptn(objs KeptnObjects) ([]Document, []Note, error) {
	var docs []Document
	var ns notes
	for _, a := range objs.Definitions {
		from := "AnalysisDefinition " + a.Name
		file := a.File
		p := newPolicy(a.Name, from, fmt.Sprintf("Imported by canary import keptn from %s (%s).\n"+
			"Scored as Keptn scores: an objective is a group of its weight, passing\n"+
			"whole, half on its warning target, not at all on its failure target.", from, file))
		params, queries := names{}, names{}
		groups := mapping()
		for i, o := range a.Spec.Objectives {
			ofrom := from + ", objective " + o.AnalysisValueTemplateRef.Name
			at := fmt.Sprintf("spec.objectives[%d]", i)
			t := findValueTemplate(objs, o.AnalysisValueTemplateRef, a.Namespace)
			if t == nil {
				ns.add(ofrom, "AnalysisValueTemplate %s is not in the input: not imported; pass its file too", o.AnalysisValueTemplateRef.Name)
				continue
			}
			text, refs, err := keptnQuery(t.Spec.Query)
			if err != nil {
				ns.add(ofrom, "not imported: %v", err)
				continue
			}
			for _, r := range refs {
				if !params[r] {
					params[r] = true
					set(p.params, r, flowMapping(), fmt.Sprintf("AnalysisValueTemplate %s: {{.%s}}, an arg of the Analysis", t.Name, r))
				}
			}
			qname := queries.take(t.Name)
			q := mapping()
			set(q, "prometheus", str(text), fmt.Sprintf("AnalysisValueTemplate %s spec.query (provider %s)", t.Name, t.Spec.Provider.Name))
			set(p.queries, qname, q, "")
			ns.add(ofrom, "provider %s: the query runs on the Prometheus source of canary serve's config; a provider of another type will not answer it", t.Spec.Provider.Name)

			failure, err := keptnCriterion(qname, o.Target.Failure)
			if err != nil {
				ns.add(ofrom, "target.failure: %v: not imported", err)
				continue
			}
			warning, err := keptnCriterion(qname, o.Target.Warning)
			if err != nil {
				ns.add(ofrom, "target.warning: %v: not imported", err)
				continue
			}
			group := ruleName(o.AnalysisValueTemplateRef.Name)
			weight := o.Weight
			if weight <= 0 {
				weight = 1
			}
			set(groups, group, integer(weight), at+".weight")
			pass := "true"
			if failure != "" {
				pass = "not (" + failure + ")"
			}
			rule := mapping()
			set(rule, "name", str(group), "")
			set(rule, "expr", str(keptnTrue(qname, pass)), at+".target.failure, negated: half the objective's points")
			set(rule, "group", str(group), "")
			if o.KeyObjective {
				set(rule, "critical", boolean(true), at+".keyObjective")
			}
			set(rule, "noData", str("fail"), "")
			p.rules.Content = append(p.rules.Content, rule)
			second := pass
			comment := at + ": no warning target: the other half of the points goes with passing"
			if warning != "" {
				second = pass + " && not (" + warning + ")"
				comment = at + ".target.warning, negated: the other half"
			}
			rule2 := mapping()
			set(rule2, "name", str(group+"-no-warning"), "")
			set(rule2, "expr", str(keptnTrue(qname, second)), comment)
			set(rule2, "group", str(group), "")
			set(rule2, "noData", str("fail"), "")
			p.rules.Content = append(p.rules.Content, rule2)
		}
		if len(p.rules.Content) == 0 {
			ns.add(from, "no objective could be carried over: no policy written")
			continue
		}
		sc := mapping()
		set(sc, "pass", integer(a.Spec.TotalScore.PassPercentage), "spec.totalScore.passPercentage")
		set(sc, "marginal", integer(a.Spec.TotalScore.WarningPercentage), "spec.totalScore.warningPercentage: a warning is inconclusive")
		set(sc, "groups", groups, "")
		p.scoring = sc
		d, err := p.document()
		if err != nil {
			return nil, nil, err
		}
		docs = append(docs, d)
	}
	for _, t := range objs.Templates {
		used := false
		for _, a := range objs.Definitions {
			for _, o := range a.Spec.Objectives {
				used = used || o.AnalysisValueTemplateRef.Name == t.Name
			}
		}
		if !used {
			ns.add("AnalysisValueTemplate "+t.Name, "no AnalysisDefinition of the input uses it: no objective, so no rule")
		}
	}
	return docs, ns.list, nil
}

// keptnTrue keeps a rule reading its query when its condition is constant.
func keptnTrue(query, cond string) string {
	if cond == "true" {
		return query + " == " + query
	}
	return cond
}

func findValueTemplate(objs KeptnObjects, ref KeptnRef, ns string) *KeptnValueTemplate {
	if ref.Namespace != "" {
		ns = ref.Namespace
	}
	for i := range objs.Templates {
		t := &objs.Templates[i]
		if t.Name == ref.Name && (t.Namespace == "" || ns == "" || t.Namespace == ns) {
			return t
		}
	}
	return nil
}

// keptnQuery checks a value template's query: a Go template over the
// Analysis's args ({{.workload}}), which is how the engine's templates read
// params. It returns the args it reads.
func keptnQuery(text string) (string, []string, error) {
	trees, err := parse.Parse("query", text, "{{", "}}")
	if err != nil {
		return "", nil, fmt.Errorf("query template: %w", err)
	}
	var refs []string
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			for _, c := range n.Pipe.Cmds {
				for _, a := range c.Args {
					if f, ok := a.(*parse.FieldNode); ok && len(f.Ident) == 1 {
						refs = append(refs, f.Ident[0])
					}
				}
			}
		}
	}
	if tr := trees["query"]; tr != nil {
		walk(tr.Root)
	}
	for _, r := range refs {
		if !identRE.MatchString(r) || reservedIdents[r] {
			return "", nil, fmt.Errorf("arg %q cannot be a param name", r)
		}
	}
	return text, refs, nil
}

// keptnCriterion is the expression that holds when the value meets the
// criterion, or "" for none.
func keptnCriterion(v string, o *KeptnOperator) (string, error) {
	if o == nil {
		return "", nil
	}
	var out []string
	cmp := func(op string, x *KeptnValue) {
		if x != nil {
			out = append(out, v+" "+op+" "+formatNumber(x.FixedValue.AsApproximateFloat64()))
		}
	}
	cmp("<", o.LessThan)
	cmp("<=", o.LessThanOrEqual)
	cmp(">", o.GreaterThan)
	cmp(">=", o.GreaterThanOrEqual)
	cmp("==", o.EqualTo)
	if r := o.InRange; r != nil {
		out = append(out, fmt.Sprintf("%s >= %s && %s <= %s", v, formatNumber(r.LowBound.AsApproximateFloat64()), v, formatNumber(r.HighBound.AsApproximateFloat64())))
	}
	if r := o.NotInRange; r != nil {
		out = append(out, fmt.Sprintf("(%s < %s || %s > %s)", v, formatNumber(r.LowBound.AsApproximateFloat64()), v, formatNumber(r.HighBound.AsApproximateFloat64())))
	}
	switch len(out) {
	case 0:
		return "", fmt.Errorf("no operator")
	case 1:
		return out[0], nil
	}
	return "", fmt.Errorf("%d operators: Keptn takes one", len(out))
}
