package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// StepID names the open question of a conversation. It is stored with the
// state, so its values are part of the stored format: "intake.when",
// "readiness.2", "checkin.0", "forget".
type StepID string

// The steps the conversation can wait on.
const (
	StepNone            StepID = ""
	StepIntakeWhen      StepID = "intake.when"
	StepIntakeTreatment StepID = "intake.treatment"
	StepIntakeArea      StepID = "intake.area"
	StepIntakeAcute     StepID = "intake.acute"
	StepIntakeChild     StepID = "intake.child"
	StepIntakeConsent   StepID = "intake.consent"
	StepForget          StepID = "forget"
)

// intakeOrder is the order of the intake questions; consent comes after
// the last one only when it was not given already.
var intakeOrder = []StepID{StepIntakeWhen, StepIntakeTreatment, StepIntakeArea, StepIntakeAcute, StepIntakeChild}

// nextIntake is the intake question after cur, or StepNone after the last.
func nextIntake(cur StepID) StepID {
	for i, st := range intakeOrder {
		if st == cur && i+1 < len(intakeOrder) {
			return intakeOrder[i+1]
		}
	}
	return StepNone
}

// readinessStep and checkinStep name question i of those questionnaires.
func readinessStep(i int) StepID { return StepID(fmt.Sprintf("readiness.%d", i)) }
func checkinStep(i int) StepID   { return StepID(fmt.Sprintf("checkin.%d", i)) }

// StepCheckinGate is the check-in's yes/no question before the list of
// warning signs (CheckinSpec.SignsGate).
const StepCheckinGate StepID = "checkin.gate"

// flow splits a step into its flow ("intake", "readiness", "checkin",
// "forget") and the part after the dot.
func (id StepID) flow() (flow, rest string) {
	flow, rest, _ = strings.Cut(string(id), ".")
	return flow, rest
}

// index is the question index of a readiness or check-in step, or -1.
func (id StepID) index() int {
	_, rest := id.flow()
	i, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return i
}

// inIntake reports whether id is an intake question.
func (id StepID) inIntake() bool { f, _ := id.flow(); return f == "intake" }

// inCheckin reports whether id is a check-in question.
func (id StepID) inCheckin() bool { f, _ := id.flow(); return f == "checkin" }
