package triage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"aftercare/engine"
)

func TestDebugUnreadWords(t *testing.T) {
	names := os.Getenv("TRIAGE_UNREAD")
	if names == "" {
		t.Skip()
	}
	c := Default()
	count := map[string]int{}
	for _, n := range strings.Split(names, ",") {
		paths, _ := filepath.Glob(filepath.Join("testdata", "corpus", n+".*.tsv"))
		for _, p := range paths {
			for _, tc := range readTSV(t, p) {
				if tc.want != engine.None {
					continue
				}
				sc := c.pool.Get().(*scratch)
				sc.reset()
				c.rs.run(sc, tc.text, tc.hours)
				for i := range sc.toks {
					tk := &sc.toks[i]
					if tk.vocab && tk.claim == 0 && !tk.timeClaim && !tk.scoped {
						count[string(sc.norm[tk.s:tk.e])]++
					}
				}
			}
		}
	}
	type kv struct {
		k string
		v int
	}
	var l []kv
	for k, v := range count {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
	for _, x := range l {
		fmt.Printf("%s:%d ", x.k, x.v)
	}
	fmt.Println()
}
