package engine

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// phraseMatcher finds every occurrence of any of a list of normalised
// phrases in one pass over a normalised message (an Aho–Corasick automaton
// compiled into a table when the protocol is indexed), instead of one
// search through the message for each phrase. Phrases come in groups (one
// group per FAQ entry); a match reports its phrase's group and length.
// It is read-only once built, so steps share it freely.
type phraseMatcher struct {
	// class maps a byte to its column in next; bytes that occur in no
	// phrase share column 0, which always leads back to the root.
	class  [256]uint8
	nclass int
	// next is the automaton: next[state*nclass+class] is the next state.
	next []int32
	// out lists, per state, the phrases that end there (its own and those
	// that are suffixes of it).
	out [][]int32
	// group and length describe each phrase by ID.
	group, length []int
	groups        int
}

// newPhraseMatcher compiles groups of normalised phrases. Phrases that can
// never score (empty, or a lone space) are left out, as normScore ignores
// them.
func newPhraseMatcher(groups [][]string) *phraseMatcher {
	m := &phraseMatcher{groups: len(groups)}
	for _, g := range groups {
		for _, p := range g {
			for i := 0; i < len(p); i++ {
				if m.class[p[i]] == 0 {
					m.nclass++
					m.class[p[i]] = uint8(m.nclass)
				}
			}
		}
	}
	m.nclass++ // column 0
	if m.nclass > 256 {
		// More distinct bytes than a uint8 column index: cannot happen for
		// 255 phrase bytes plus column 0, but keep the table honest.
		panic("engine: phrase alphabet too large")
	}
	// The trie, with children kept in maps while building.
	children := []map[uint8]int32{{}}
	var ends [][]int32
	ends = append(ends, nil)
	for gi, g := range groups {
		for _, p := range g {
			if p == "" || p == " " {
				continue
			}
			id := int32(len(m.group))
			m.group = append(m.group, gi)
			m.length = append(m.length, len(p))
			s := int32(0)
			for i := 0; i < len(p); i++ {
				c := m.class[p[i]]
				nx, ok := children[s][c]
				if !ok {
					nx = int32(len(children))
					children = append(children, map[uint8]int32{})
					ends = append(ends, nil)
					children[s][c] = nx
				}
				s = nx
			}
			ends[s] = append(ends[s], id)
		}
	}
	n := len(children)
	m.next = make([]int32, n*m.nclass)
	m.out = make([][]int32, n)
	fail := make([]int32, n)
	// Breadth first, so a state's failure state is complete before it.
	queue := []int32{0}
	m.out[0] = ends[0]
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for c := 0; c < m.nclass; c++ {
			v, ok := children[u][uint8(c)]
			switch {
			case ok:
				if u != 0 {
					fail[v] = m.next[int(fail[u])*m.nclass+c]
				}
				m.out[v] = append(append([]int32(nil), ends[v]...), m.out[fail[v]]...)
				m.next[int(u)*m.nclass+c] = v
				queue = append(queue, v)
			case u != 0:
				m.next[int(u)*m.nclass+c] = m.next[int(fail[u])*m.nclass+c]
			}
		}
	}
	return m
}

// each calls fn with the group, start and length of every occurrence of a
// phrase in n, overlapping ones included, in the order they end.
func (m *phraseMatcher) each(n string, fn func(group, start, length int)) {
	s := int32(0)
	for i := 0; i < len(n); i++ {
		s = m.next[int(s)*m.nclass+int(m.class[n[i]])]
		for _, id := range m.out[s] {
			l := m.length[id]
			fn(m.group[id], i+1-l, l)
		}
	}
}

// best returns the group with the highest score and its score, where a
// group's score is the length of its longest phrase found un-negated in n
// (as normsScore computes it); ties go to the first group, and a message
// matching nothing gives -1, 0.
func (m *phraseMatcher) best(n string) (int, int) {
	var buf [32]int
	scores := buf[:0]
	if m.groups <= len(buf) {
		scores = buf[:m.groups]
	} else {
		scores = make([]int, m.groups)
	}
	m.each(n, func(g, start, l int) {
		if l > scores[g] && !negatedBefore(n, start+1) {
			scores[g] = l
		}
	})
	best, bestLen := -1, 0
	for g, l := range scores {
		if l > bestLen {
			best, bestLen = g, l
		}
	}
	return best, bestLen
}

// negatedBefore reports whether the phrase at index i of n is preceded by a
// negation within two words ("not tired", "no dizziness").
func negatedBefore(n string, i int) bool {
	s := n[:i]
	for range 2 {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
		if s == "" {
			return false
		}
		w := s
		if j := strings.LastIndexFunc(s, unicode.IsSpace); j >= 0 {
			_, size := utf8.DecodeRuneInString(s[j:])
			w, s = s[j+size:], s[:j]
		} else {
			s = ""
		}
		switch w {
		case "no", "not", "never", "dont", "isnt", "arent", "without", "nor", "sin":
			return true
		}
	}
	return false
}
