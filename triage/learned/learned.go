// Package learned is triage's second opinion: a logistic regression over
// hashed character and word n-grams that scores how likely a patient
// message is to report a red flag (urgent or emergency).
//
// The rule-based classifier in package triage reads negation, time and
// severity the way a clinician does, but it only knows the wording it was
// written for. This model has read thousands of labelled messages, typos
// and slang included, and generalises from spelling fragments ("chset"
// shares "che" and "hes" with "chest"). It is used in one direction only:
// it may raise a message to the safety-net question, never lower what the
// rules found, and never fires an emergency on its own.
//
// # Basics
//
//	m := learned.Default()             // embedded weights (model/redflag.bin)
//	p := m.Score("my chset feels tight") // probability of a red flag
//	if p >= m.Threshold { ... }          // worth asking about
//
// Weights are trained by `go run ./cmd/aftercare-train`, which is
// deterministic: the same labelled files give the same bytes.
//
// # How a message is read
//
// Text is lowercased and accents folded; words are split on anything that
// is not a letter or digit, apostrophes dropped ("can't" = "cant"). Each word
// gives its unigram, its bigram with the word before, and the character 3-
// to 5-grams of "<word>". Words within five words after a negation cue ("no",
// "not", "denies", "sin", "ni", ...) and before a clause break or "but" are
// hashed as negated, so "no chest pain" does not look like "chest pain".
// Every feature is hashed (FNV-1a) into a fixed table of weights; the score
// is the logistic of the bias plus the weights of the features present,
// scaled by one over the square root of their number.
//
// Score allocates nothing and is safe for concurrent use; its cost grows
// linearly with the message (about 1 µs per 10 words).
package learned

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"unicode/utf8"
)

// Bits is the size of the hashed feature table: 2^Bits weights.
const Bits = 17

const (
	dims   = 1 << Bits
	magic  = "AFTM"
	header = 4 + 4 + 4 + 4 + 4 // magic, version, bits, bias, threshold
)

// Model is a trained logistic regression. It is immutable once built, so one
// Model may be shared by every goroutine.
type Model struct {
	// W are the feature weights, 2^Bits of them.
	W []float32
	// Bias is the intercept.
	Bias float32
	// Threshold is the score from which a message is worth asking about; the
	// trainer picks it on held-out folds for high red-flag recall.
	Threshold float32
}

//go:embed model/redflag.bin
var embedded []byte

var (
	defaultOnce sync.Once
	defaultM    *Model
)

// Default returns the model built from the embedded weights. It panics only
// if the embedded file is broken, which the package tests rule out.
func Default() *Model {
	defaultOnce.Do(func() {
		m, err := Decode(embedded)
		if err != nil {
			panic("learned: embedded model: " + err.Error())
		}
		defaultM = m
	})
	return defaultM
}

// ErrFormat is returned by Decode for bytes that are not a model file.
var ErrFormat = errors.New("learned: not a model file")

// Decode reads a model file written by Encode.
func Decode(b []byte) (*Model, error) {
	if len(b) < header || string(b[:4]) != magic {
		return nil, ErrFormat
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrFormat, v)
	}
	if bits := binary.LittleEndian.Uint32(b[8:]); bits != Bits {
		return nil, fmt.Errorf("%w: %d bits, want %d", ErrFormat, bits, Bits)
	}
	if len(b) != header+4*dims {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrFormat, len(b), header+4*dims)
	}
	m := &Model{W: make([]float32, dims)}
	m.Bias = math.Float32frombits(binary.LittleEndian.Uint32(b[12:]))
	m.Threshold = math.Float32frombits(binary.LittleEndian.Uint32(b[16:]))
	for i := range m.W {
		m.W[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[header+4*i:]))
	}
	return m, nil
}

// Encode writes the model in the format Decode reads: little-endian, a
// small header then the weights.
func (m *Model) Encode() []byte {
	b := make([]byte, header+4*dims)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[4:], 1)
	binary.LittleEndian.PutUint32(b[8:], Bits)
	binary.LittleEndian.PutUint32(b[12:], math.Float32bits(m.Bias))
	binary.LittleEndian.PutUint32(b[16:], math.Float32bits(m.Threshold))
	for i, w := range m.W {
		binary.LittleEndian.PutUint32(b[header+4*i:], math.Float32bits(w))
	}
	return b
}

// MaxBytes bounds the text scored: a longer message is scored on its first
// MaxBytes-TailBytes bytes and its last TailBytes, so a megabyte costs what
// a long letter does and a red flag at the very end still counts.
const (
	MaxBytes  = 16 << 10
	TailBytes = 4 << 10
)

// Score returns the probability, from 0 to 1, that text reports a red flag.
func (m *Model) Score(text string) float32 {
	var sum float64
	n := 0
	visit(text, func(h uint32) {
		sum += float64(m.W[h&(dims-1)])
		n++
	})
	if n == 0 {
		return sigmoid(float64(m.Bias))
	}
	return sigmoid(float64(m.Bias) + sum/math.Sqrt(float64(n)))
}

func sigmoid(z float64) float32 { return float32(1 / (1 + math.Exp(-z))) }

// Features appends the hashed feature indexes of text to dst; the trainer
// uses it, and Score reads the same features without building the slice.
func Features(dst []uint32, text string) []uint32 {
	visit(text, func(h uint32) { dst = append(dst, h&(dims-1)) })
	return dst
}

// FNV-1a.
const (
	offset32 = 2166136261
	prime32  = 16777619
)

func hashBytes(h uint32, b []byte) uint32 {
	for _, c := range b {
		h ^= uint32(c)
		h *= prime32
	}
	return h
}

// Seeds keep the feature families apart in the one table.
const (
	seedWord   = offset32
	seedNeg    = offset32 ^ 0x9e3779b9
	seedBigram = offset32 ^ 0x85ebca6b
	seedChar   = offset32 ^ 0xc2b2ae35
)

// maxWord bounds one word; longer runs of letters are cut into pieces.
const maxWord = 40

// visit calls emit with every feature hash of text.
func visit(text string, emit func(uint32)) {
	if len(text) > MaxBytes {
		visitPart(text[:MaxBytes-TailBytes], emit)
		visitPart(text[len(text)-TailBytes:], emit)
		return
	}
	visitPart(text, emit)
}

// wordState is what the scanner carries from one word to the next.
type wordState struct {
	prev    uint32 // hash of the previous word, 0 at a clause start
	negLeft int    // words still in a negation's scope
}

func visitPart(text string, emit func(uint32)) {
	var buf [maxWord + 2]byte
	n := 0
	var ws wordState
	flush := func() {
		if n == 0 {
			return
		}
		word(buf[:n+2], n, &ws, emit)
		n = 0
	}
	for i := 0; i < len(text); {
		r, size := rune(text[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(text[i:])
		}
		i += size
		c, ok := fold(r)
		switch {
		case ok:
			if n == maxWord {
				flush()
			}
			buf[1+n] = c
			n++
		case r == '\'' || r == '\u2019':
			// dropped inside words: "can't" = "cant"
		default:
			flush()
			if breaksClause(r) {
				ws.prev, ws.negLeft = 0, 0
			}
		}
	}
	flush()
}

// word emits the features of one word, buf[1:n+1], and moves the state on.
func word(buf []byte, n int, ws *wordState, emit func(uint32)) {
	w := buf[1 : n+1]
	neg := ws.negLeft > 0
	if neg {
		ws.negLeft--
	}
	if isTerminator(w) {
		ws.negLeft = 0
		neg = false
	}
	seed := uint32(seedWord)
	if neg {
		seed = seedNeg
	}
	h := hashBytes(seed, w)
	emit(h)
	if ws.prev != 0 {
		emit((ws.prev * prime32) ^ h ^ seedBigram)
	}
	ws.prev = h
	// Character n-grams of "<word>", 3 to 5 long, negation-blind so that a
	// misspelt sign still shares most of its fragments with the right one.
	buf[0], buf[n+1] = '<', '>'
	for k := 3; k <= 5; k++ {
		for i := 0; i+k <= n+2; i++ {
			emit(hashBytes(seedChar+uint32(k), buf[i:i+k]))
		}
	}
	if isNegator(w) {
		ws.negLeft = 5
	}
}

// fold lowercases letters and digits and folds Latin accents; it reports
// false for anything that is not part of a word.
func fold(r rune) (byte, bool) {
	switch {
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return byte(r), true
	case r >= 'A' && r <= 'Z':
		return byte(r + 32), true
	}
	switch r {
	case 'á', 'à', 'â', 'ä', 'ã', 'Á', 'À', 'Â', 'Ä', 'Ã':
		return 'a', true
	case 'é', 'è', 'ê', 'ë', 'É', 'È', 'Ê', 'Ë':
		return 'e', true
	case 'í', 'ì', 'î', 'ï', 'Í', 'Ì', 'Î', 'Ï':
		return 'i', true
	case 'ó', 'ò', 'ô', 'ö', 'õ', 'Ó', 'Ò', 'Ô', 'Ö', 'Õ':
		return 'o', true
	case 'ú', 'ù', 'û', 'ü', 'Ú', 'Ù', 'Û', 'Ü':
		return 'u', true
	case 'ñ', 'Ñ':
		return 'n', true
	case 'ç', 'Ç':
		return 'c', true
	}
	return 0, false
}

func breaksClause(r rune) bool {
	switch r {
	case '.', '!', '?', ';', ':', ',', '\n', '(', ')', '¡', '¿':
		return true
	}
	return false
}

// Negation cues and scope terminators, English and Spanish. They are few
// and closed-class, so they live here rather than in a data file.
func isNegator(w []byte) bool {
	switch string(w) {
	case "no", "not", "never", "without", "denies", "deny", "denied", "dont", "didnt", "doesnt", "isnt", "arent",
		"wasnt", "werent", "havent", "hasnt", "hadnt", "none", "nor", "neither",
		"sin", "ni", "nunca", "tampoco", "niega", "nada", "ningun", "ninguna", "ninguno":
		return true
	}
	return false
}

func isTerminator(w []byte) bool {
	switch string(w) {
	case "but", "however", "although", "though", "except", "yet", "still", "pero", "aunque", "sino", "excepto", "todavia":
		return true
	}
	return false
}
