package engine

// reassure answers a normal after-effect with its care tip.
func (s *step) reassure(signs []string) {
	tip := ""
	for _, sg := range signs {
		if t, ok := s.p.AfterEffects[sg]; ok {
			tip = t
			break
		}
	}
	if tip == "" {
		tip = s.p.AfterEffects["default"]
	}
	s.reply(s.fill(tip))
}

// faq returns the answer to a common aftercare question, or "".
func (s *step) faq(n string) string {
	best, _ := s.p.faqMatch.best(n)
	if best < 0 {
		return ""
	}
	return s.fill(s.p.FAQ[best].Answer)
}
