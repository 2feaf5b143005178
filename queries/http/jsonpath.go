package httpprobe

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// jsonPath is a json field: keys and array indexes from the document's
// root, such as data.backlog.records or items[0].count. Keys are written
// bare, so one holding '.', '[' or ']' cannot be reached.
type jsonPath struct {
	text  string
	steps []step
}

// step is one key, or one array index when index >= 0.
type step struct {
	key   string
	index int
}

func (p *jsonPath) String() string { return strconv.Quote(p.text) }

// parseJSONPath reads key(.key|[index])* or a path starting with an index
// such as [0].count, for a document that is an array.
func parseJSONPath(text string) (*jsonPath, error) {
	bad := func(why string) error { return badQuery("json path %q: %s", text, why) }
	p := &jsonPath{text: text}
	s := text
	for i := 0; s != ""; i++ {
		if s[0] == '[' {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, bad("unclosed [")
			}
			digits := s[1:end]
			if digits == "" || strings.Trim(digits, "0123456789") != "" {
				return nil, bad(fmt.Sprintf("[%s] is not an array index such as [0]", digits))
			}
			n, err := strconv.Atoi(digits)
			if err != nil {
				return nil, bad(fmt.Sprintf("[%s] is out of range", digits))
			}
			p.steps = append(p.steps, step{index: n})
			s = s[end+1:]
			continue
		}
		if i > 0 {
			if s[0] != '.' {
				return nil, bad(fmt.Sprintf("unexpected %q: keys are separated by dots", s[0]))
			}
			s = s[1:]
		}
		end := strings.IndexAny(s, ".[]")
		if end < 0 {
			end = len(s)
		}
		if end == 0 {
			return nil, bad("empty key")
		}
		p.steps = append(p.steps, step{key: s[:end], index: -1})
		s = s[end:]
	}
	return p, nil
}

// extract decodes doc and returns the number at the path. Booleans count
// as 1 and 0 and a string holding a number is parsed, as health documents
// write all three. Anything else is an error saying what was found.
func (p *jsonPath) extract(doc []byte) (float64, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return math.NaN(), fmt.Errorf("body is not JSON (%v); json %s not read", err, p)
	}
	at := "" // the path walked so far, for messages
	for _, st := range p.steps {
		if st.index >= 0 {
			arr, ok := v.([]any)
			if !ok {
				return math.NaN(), fmt.Errorf("json %s: %s is %s, not an array", p, where(at), kind(v))
			}
			if st.index >= len(arr) {
				return math.NaN(), fmt.Errorf("json %s: %s has %d elements, no [%d]", p, where(at), len(arr), st.index)
			}
			v = arr[st.index]
			at += "[" + strconv.Itoa(st.index) + "]"
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return math.NaN(), fmt.Errorf("json %s: %s is %s, not an object", p, where(at), kind(v))
		}
		if v, ok = obj[st.key]; !ok {
			return math.NaN(), fmt.Errorf("json %s: %s has no key %q", p, where(at), st.key)
		}
		if at != "" {
			at += "."
		}
		at += st.key
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return math.NaN(), fmt.Errorf("json %s: the string %s is not a number", p, quoteShort(x))
		}
		return f, nil
	}
	return math.NaN(), fmt.Errorf("json %s: found %s, not a number", p, kind(v))
}

func where(at string) string {
	if at == "" {
		return "the document"
	}
	return at
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

// quoteShort quotes s, cut to keep one odd value from flooding warnings.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}
