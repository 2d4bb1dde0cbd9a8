package engine

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// identKeys hold identifiers and clinical settings, not wording: they must
// be the same in every language, so a translation cannot change a threshold
// or a sign.
var identKeys = map[string]bool{
	"id": true, "signal": true, "level": true, "signs": true, "treatment": true, "max": true,
	"severe_soreness_level": true, "benign": true, "version": true,
}

var placeholderRE = regexp.MustCompile(`\{[a-z_]+\}`)

func placeholders(s string) []string {
	ps := placeholderRE.FindAllString(s, -1)
	slices.Sort(ps)
	return slices.Compact(ps)
}

// parity reports every way other differs from ref: a key missing or empty,
// a placeholder set that differs, or an identifier or number changed.
// Lists of objects with an "id" are matched by id, other lists by position.
func parity(path string, ref, other any) []string {
	key := path[strings.LastIndexAny(path, ".]")+1:]
	switch r := ref.(type) {
	case map[string]any:
		o, ok := other.(map[string]any)
		if !ok {
			return []string{path + ": missing or not an object"}
		}
		var out []string
		for k, v := range r {
			ov, ok := o[k]
			if !ok {
				out = append(out, path+"."+k+": missing")
				continue
			}
			out = append(out, parity(path+"."+k, v, ov)...)
		}
		return out
	case []any:
		o, ok := other.([]any)
		if !ok {
			return []string{path + ": missing or not a list"}
		}
		if len(r) > 0 && len(o) == 0 {
			return []string{path + ": empty"}
		}
		if identKeys[key] {
			if fmt.Sprint(r) != fmt.Sprint(o) {
				return []string{fmt.Sprintf("%s: %v, want %v (identifiers are the same in every language)", path, o, r)}
			}
			return nil
		}
		if _, isText := firstOf(r).(string); isText || len(r) == 0 {
			if key == "days" || key == "months" {
				if len(r) != len(o) {
					return []string{fmt.Sprintf("%s: %d entries, want %d", path, len(o), len(r))}
				}
			}
			for i, v := range o {
				if s, _ := v.(string); strings.TrimSpace(s) == "" {
					return []string{fmt.Sprintf("%s[%d]: empty", path, i)}
				}
			}
			return nil
		}
		var out []string
		byID := map[string]any{}
		for _, v := range o {
			if m, ok := v.(map[string]any); ok {
				if id, ok := m["id"].(string); ok {
					byID[id] = v
				}
			}
		}
		if len(byID) == 0 && len(r) != len(o) {
			out = append(out, fmt.Sprintf("%s: %d entries, want %d", path, len(o), len(r)))
		}
		for i, v := range r {
			m, _ := v.(map[string]any)
			id, hasID := m["id"].(string)
			switch {
			case hasID && byID[id] == nil:
				out = append(out, fmt.Sprintf("%s[id=%s]: missing", path, id))
			case hasID:
				out = append(out, parity(fmt.Sprintf("%s[id=%s]", path, id), v, byID[id])...)
			case i < len(o):
				out = append(out, parity(fmt.Sprintf("%s[%d]", path, i), v, o[i])...)
			}
		}
		return out
	case string:
		o, ok := other.(string)
		switch {
		case !ok:
			return []string{path + ": not a string"}
		case key == "language":
			return nil
		case identKeys[key] && o != r:
			return []string{fmt.Sprintf("%s: %q, want %q (identifiers are the same in every language)", path, o, r)}
		case r != "" && strings.TrimSpace(o) == "":
			return []string{path + ": empty"}
		case !slices.Equal(placeholders(r), placeholders(o)):
			return []string{fmt.Sprintf("%s: placeholders %v, want %v", path, placeholders(o), placeholders(r))}
		}
		return nil
	default: // numbers, booleans: clinical settings
		if fmt.Sprint(ref) != fmt.Sprint(other) {
			return []string{fmt.Sprintf("%s: %v, want %v (numbers and flags are the same in every language)", path, other, ref)}
		}
		return nil
	}
}

func firstOf(xs []any) any {
	if len(xs) == 0 {
		return nil
	}
	return xs[0]
}

func embeddedJSON(t *testing.T) map[string]map[string]any {
	t.Helper()
	ents, err := protocolFiles.ReadDir("protocol")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, e := range ents {
		b, err := protocolFiles.ReadFile("protocol/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out[e.Name()] = m
	}
	return out
}

// TestProtocolLanguageParity checks that every embedded language has every
// key of the default (English) protocol, non-empty, with the same
// placeholders in each text and the same identifiers and numbers: a
// patient in any language gets every message, and the same clinical rules.
func TestProtocolLanguageParity(t *testing.T) {
	files := embeddedJSON(t)
	ref, ok := files["default.json"]
	if !ok {
		t.Fatal("no default.json")
	}
	if len(files) < 2 {
		t.Fatalf("only %d embedded protocol; want English and Spanish at least", len(files))
	}
	for name, other := range files {
		if name == "default.json" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			for _, p := range parity("", ref, other) {
				t.Error(p)
			}
			// Nothing in the other language the default lacks either: a
			// key only one language has is a typo or a forgotten English text.
			for _, p := range parity("", other, ref) {
				if strings.HasSuffix(p, ": missing") {
					t.Errorf("%s (not in default.json)", p)
				}
			}
		})
	}
}

// TestParityCatchesAMissingKey proves the parity check fails when a text,
// an FAQ, a choice or a placeholder is dropped from a language.
func TestParityCatchesAMissingKey(t *testing.T) {
	files := embeddedJSON(t)
	ref := files["default.json"]
	cases := map[string]func(m map[string]any){
		"text":        func(m map[string]any) { delete(m["texts"].(map[string]any), "safety_net") },
		"placeholder": func(m map[string]any) { m["texts"].(map[string]any)["stopped"] = "Listo." },
		"faq":         func(m map[string]any) { m["faq"] = m["faq"].([]any)[1:] },
		"intent":      func(m map[string]any) { m["intents"].(map[string]any)["stop"] = []any{} },
		"choice id": func(m map[string]any) {
			c := m["intake"].(map[string]any)["acute"].(map[string]any)["choices"].([]any)[0].(map[string]any)
			c["id"] = "si"
		},
		"threshold": func(m map[string]any) {
			m["checkin"].(map[string]any)["rules"].(map[string]any)["severe_soreness"] = 9.0
		},
		"calendar": func(m map[string]any) { delete(m["calendar"].(map[string]any), "tomorrow") },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			var copyOf map[string]any
			b, _ := json.Marshal(ref)
			json.Unmarshal(b, &copyOf)
			if got := parity("", ref, copyOf); len(got) != 0 {
				t.Fatalf("identical copy reported: %v", got)
			}
			breakIt(copyOf)
			if got := parity("", ref, copyOf); len(got) == 0 {
				t.Errorf("parity did not notice")
			}
		})
	}
}

// TestLanguageIntentsAreDistinct checks that no phrase asks for two
// languages: "español" must never switch a patient to English.
func TestLanguageIntentsAreDistinct(t *testing.T) {
	ps := DefaultProtocols()
	seen := map[string]string{}
	for _, p := range ps {
		if len(p.Intents["language"]) == 0 {
			t.Errorf("%s: no intents.language", p.lang())
		}
		for _, ph := range p.Intents["language"] {
			n := p.phrase(ph)
			if other, dup := seen[n]; dup && other != p.lang() {
				t.Errorf("%q asks for both %s and %s", ph, other, p.lang())
			}
			seen[n] = p.lang()
		}
	}
	if len(ps) < 2 {
		t.Fatalf("%d protocols embedded, want at least English and Spanish", len(ps))
	}
}
