// Package engine is Aftercare's conversation: a pure, deterministic state
// machine that takes a patient's state, one event and the time, and returns
// the next state with everything the event causes (messages, timers, an
// escalation record, audit lines) as data. It does no I/O, reads no clock
// and keeps no globals, so one step can be replayed, tested in
// microseconds and committed atomically by the store.
//
// # Where things live
//
//   - engine.go: Engine, New and Step; the output helpers every flow uses.
//   - conversation.go: a message's way through triage, commands and the
//     open question (message, command, answer, reask).
//   - safetynet.go: what happens to a message nothing else accounts for.
//   - intake.go, readiness.go, checkin.go, faq.go: the flows, one each.
//   - clarify.go: short questions that settle an ambiguous report.
//   - person.go: a patient asking for a person, and their call-back
//     request to staff.
//   - escalate.go: what the patient is told, the staff alert and the
//     escalation record of a red flag (the reminder ladder that follows an
//     unacknowledged alert is the service's, service/ladder.go); silent.go:
//     patients who answer no check-in.
//   - schedule.go: timers (check-ins, nudges, clarify timeouts), their
//     kinds (TimerKind, TimerKindOf) and when the bot will next write;
//     steps.go: the typed conversation steps (StepID) and the intake
//     order; clinic.go: opening and quiet hours.
//   - language.go: which language a patient is answered in.
//   - protocol.go and protocol/*.json: every question, choice and text, as
//     data a clinic can edit, one file per language.
//   - state.go, message.go, triage.go, level.go: the types the store,
//     service and adapters share with the engine: states, events,
//     results, outbound messages. What a platform hands the service
//     (service.Inbound) and what a delivery answers (service.ErrUnreachable,
//     service.RetryAfterError) are the service's, not the conversation's.
//
// # Caveats
//
// Callers must serialise the steps of one patient: each consumes the state
// the previous one returned. Steps of different patients may run at once.
package engine
