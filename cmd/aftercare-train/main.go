// Command aftercare-train trains triage's learned second opinion (package
// triage/learned) from labelled patient messages and writes the weights the
// package embeds.
//
//	go run ./cmd/aftercare-train            # default training files, writes triage/learned/model/redflag.bin
//	go run ./cmd/aftercare-train -check     # train and report, write nothing
//
// Training is deterministic: the same files give the same bytes. Files are
// TSV lines "level<TAB>message<TAB>optional hours"; lines starting with #
// are comments. Files under a "sealed" folder are refused: sealed sets are
// scored once, never trained on.
//
// The threshold is chosen on out-of-fold scores (5 folds): the lowest score
// at which at most -fpr of the normal ("none") messages would be asked the
// safety-net question by the model alone.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aftercare-clinic/aftercare/triage/learned"
)

// defaultFiles are the labelled sets trained on, relative to the repository.
var defaultFiles = []string{
	"triage/testdata/corpus/*.tsv",
	"triage/testdata/dev.tsv",
	"triage/testdata/fresh_*.tsv",
	"triage/testdata/holdout*.tsv",
	"../shared/triage/cases.tsv",
}

type example struct {
	feats []uint32
	y     float64 // 1 red flag, watchY watch, 0 none
	level string
}

// watchY is the target for watch-level messages: between none and a red
// flag, so a watch sign the rules miss still tends to reach the question.
const watchY = 0.6

func main() {
	out := flag.String("o", "triage/learned/model/redflag.bin", "where to write the weights")
	check := flag.Bool("check", false, "train and report, write nothing")
	epochs := flag.Int("epochs", 100, "passes over the data")
	fpr := flag.Float64("fpr", 0.05, "share of normal messages the model alone may flag, on held-out folds")
	flag.Parse()
	files := flag.Args()
	if len(files) == 0 {
		files = defaultFiles
	}
	exs, err := load(files)
	if err != nil {
		fmt.Fprintln(os.Stderr, "aftercare-train:", err)
		os.Exit(2)
	}
	fmt.Printf("examples: %d\n", len(exs))

	// Out-of-fold scores pick the threshold honestly.
	const folds = 5
	oof := make([]float64, len(exs))
	for k := 0; k < folds; k++ {
		var tr []example
		for i, e := range exs {
			if i%folds != k {
				tr = append(tr, e)
			}
		}
		m := train(tr, *epochs)
		for i, e := range exs {
			if i%folds == k {
				oof[i] = score(m, e.feats)
			}
		}
	}
	thr := pickThreshold(exs, oof, *fpr)
	report(exs, oof, thr)

	m := train(exs, *epochs)
	m.Threshold = float32(thr)
	if *check {
		return
	}
	if err := os.WriteFile(*out, m.Encode(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "aftercare-train:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (threshold %.3f)\n", *out, thr)
}

// load reads every file matched by the patterns, in a fixed order.
func load(patterns []string) ([]example, error) {
	var paths []string
	for _, p := range patterns {
		ms, err := filepath.Glob(p)
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 {
			return nil, fmt.Errorf("%s: no such file", p)
		}
		paths = append(paths, ms...)
	}
	slices.Sort(paths)
	var exs []example
	for _, p := range paths {
		if slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "sealed") {
			return nil, fmt.Errorf("%s: sealed sets are never trained on", p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				continue
			}
			level, msg, _ := strings.Cut(line, "\t")
			msg, _, _ = strings.Cut(msg, "\t")
			var y float64
			switch level {
			case "emergency", "urgent":
				y = 1
			case "watch":
				y = watchY
			case "none":
			default:
				f.Close()
				return nil, fmt.Errorf("%s:%d: unknown level %q", p, n, level)
			}
			exs = append(exs, example{feats: learned.Features(nil, msg), y: y, level: level})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	if len(exs) == 0 {
		return nil, errors.New("no examples")
	}
	// A fixed shuffle spreads every file over the folds.
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(exs), func(i, j int) { exs[i], exs[j] = exs[j], exs[i] })
	return exs, nil
}

// train fits the weights by stochastic gradient descent on the log loss
// with L2 regularisation, visiting examples in a fixed pseudo-random order.
func train(exs []example, epochs int) *learned.Model {
	w := make([]float64, 1<<learned.Bits)
	var bias float64
	const l2 = 1e-6
	r := rand.New(rand.NewPCG(3, 4))
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	t := 0
	for ep := 0; ep < epochs; ep++ {
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			e := exs[i]
			t++
			lr := 0.5 / math.Sqrt(1+float64(t)/float64(len(exs)))
			scale := 1 / math.Sqrt(float64(max(1, len(e.feats))))
			z := bias
			for _, f := range e.feats {
				z += w[f] * scale
			}
			p := 1 / (1 + math.Exp(-z))
			g := p - e.y
			bias -= lr * g
			for _, f := range e.feats {
				w[f] -= lr * (g*scale + l2*w[f])
			}
		}
	}
	m := &learned.Model{W: make([]float32, len(w)), Bias: float32(bias)}
	for i, x := range w {
		m.W[i] = float32(x)
	}
	return m
}

func score(m *learned.Model, feats []uint32) float64 {
	z := float64(m.Bias)
	for _, f := range feats {
		z += float64(m.W[f])
	}
	if len(feats) > 0 {
		z = float64(m.Bias) + (z-float64(m.Bias))/math.Sqrt(float64(len(feats)))
	}
	return 1 / (1 + math.Exp(-z))
}

// pickThreshold returns the lowest score that flags at most fpr of the
// normal messages.
func pickThreshold(exs []example, oof []float64, fpr float64) float64 {
	var none []float64
	for i, e := range exs {
		if e.level == "none" {
			none = append(none, oof[i])
		}
	}
	slices.Sort(none)
	k := int(math.Floor(float64(len(none)) * (1 - fpr)))
	if k >= len(none) {
		k = len(none) - 1
	}
	return none[k] + 1e-6
}

func report(exs []example, oof []float64, thr float64) {
	type tally struct{ n, flagged int }
	by := map[string]*tally{}
	for i, e := range exs {
		t := by[e.level]
		if t == nil {
			t = &tally{}
			by[e.level] = t
		}
		t.n++
		if oof[i] >= thr {
			t.flagged++
		}
	}
	fmt.Printf("threshold %.3f (out-of-fold, model alone):\n", thr)
	for _, l := range []string{"emergency", "urgent", "watch", "none"} {
		if t := by[l]; t != nil {
			fmt.Printf("  %-9s %4d messages, %5.1f %% flagged\n", l, t.n, 100*float64(t.flagged)/float64(t.n))
		}
	}
}
