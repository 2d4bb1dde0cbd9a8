package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// checkKeys walks a configuration file's JSON against the Config type and
// reports every key that is not a configuration key (with the closest known
// key as a suggestion), every value of the wrong JSON type and every secret
// written into the file, each under its full key path ("telegram.token",
// "clinic.hours.mon", "webhooks[0].url"). It reports all of them at once so
// a clinic fixes its file in one pass instead of one error per start.
func checkKeys(b []byte) []*ConfigError {
	var root any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil // syntax errors are reported by the strict decode
	}
	w := keyWalker{known: knownKeyPaths()}
	w.walk("", root, reflect.TypeOf(Config{}))
	return w.errs
}

// secretName matches keys that would hold a secret; secrets are read from
// the environment only, so such a key is an error wherever it appears.
var secretName = regexp.MustCompile(`(?i)^[a-z_]*(token|secret|password)$`)

type keyWalker struct {
	known []string
	errs  []*ConfigError
}

var (
	jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

func (w *keyWalker) bad(key, format string, args ...any) {
	w.errs = append(w.errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// walk checks the JSON value v found at path against the Go type t.
func (w *keyWalker) walk(path string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		if v == nil {
			return
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		raw, _ := json.Marshal(v)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			w.bad(path, "%v", err)
		}
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if _, ok := v.(string); !ok {
			w.bad(path, "expected a string, got %s", jsonKind(v))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			w.bad(path, "expected an object {...}, got %s", jsonKind(v))
			return
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(obj) {
			kp := joinKey(path, k)
			if secretName.MatchString(k) {
				w.bad(kp, "secrets are read from the environment only; remove it from the file and set %s / %s", EnvTelegramToken, EnvDiscordToken)
				continue
			}
			f, ok := fields[k]
			if !ok {
				msg := "not a configuration key"
				if s := suggestKey(kp, w.known); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				} else {
					msg += " (check the spelling against aftercare.sample.json)"
				}
				w.bad(kp, "%s", msg)
				continue
			}
			w.walk(kp, obj[k], f.Type)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			w.bad(path, "expected an object {...}, got %s", jsonKind(v))
			return
		}
		for _, k := range sortedKeys(obj) {
			w.walk(joinKey(path, k), obj[k], t.Elem())
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			w.bad(path, "expected an array [...], got %s", jsonKind(v))
			return
		}
		for i, e := range arr {
			w.walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			w.bad(path, "expected a string, got %s", jsonKind(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.bad(path, "expected true or false, got %s", jsonKind(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			w.bad(path, "expected a whole number, got %s", jsonKind(v))
			return
		}
		if _, err := n.Int64(); err != nil {
			w.bad(path, "expected a whole number, got %s", n)
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			w.bad(path, "expected a number, got %s", jsonKind(v))
		}
	}
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case json.Number:
		return "the number " + x.String()
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// jsonFields maps a struct's JSON names to its fields, including embedded
// structs' fields as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// knownKeyPaths lists every configuration key path, with "[]" for an
// array element ("webhooks[].url"); map entries (clinic.hours.mon) are
// named by the map's own key.
func knownKeyPaths() []string {
	var out []string
	var rec func(path string, t reflect.Type, depth int)
	rec = func(path string, t reflect.Type, depth int) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if path != "" {
			out = append(out, path)
		}
		if depth > 6 || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			for name, f := range jsonFields(t) {
				rec(joinKey(path, name), f.Type, depth+1)
			}
		case reflect.Slice, reflect.Array:
			if e := t.Elem(); e.Kind() == reflect.Struct || (e.Kind() == reflect.Pointer && e.Elem().Kind() == reflect.Struct) {
				for name, f := range jsonFields(derefType(e)) {
					rec(path+"[]."+name, f.Type, depth+1)
				}
			}
		}
	}
	rec("", reflect.TypeOf(Config{}), 0)
	sort.Strings(out)
	return out
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var arrayIndex = regexp.MustCompile(`\[\d+\]`)

// suggestKey returns the known key path closest to the unknown one by edit
// distance, comparing whole paths and, so that a key written in the wrong
// section is found too ("timezone" → "clinic.time_zone"), the last part of
// each path; "" when nothing is close enough to be a likely typo.
func suggestKey(unknown string, known []string) string {
	norm := arrayIndex.ReplaceAllString(unknown, "[]")
	parent, leaf := splitKey(norm)
	best, bestScore := "", 1<<30
	for _, k := range known {
		kp, kl := splitKey(k)
		score := levenshtein(norm, k)
		byLeaf := levenshtein(leaf, kl)
		if kp != parent {
			byLeaf++ // moving the key to another section is one more edit
		}
		score = min(score, byLeaf)
		if score < bestScore || (score == bestScore && len(k) < len(best)) {
			best, bestScore = k, score
		}
	}
	if best == "" || bestScore > max(2, len([]rune(leaf))/3) {
		return ""
	}
	// Give an array element's suggestion the index the file used.
	if p, _ := splitKey(best); p == parent {
		up, _ := splitKey(unknown)
		_, bl := splitKey(best)
		return joinKey(up, bl)
	}
	return best
}

func splitKey(p string) (parent, leaf string) {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// levenshtein is the edit distance between a and b, in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
