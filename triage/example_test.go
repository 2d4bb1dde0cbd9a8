package triage_test

import (
	"fmt"

	"github.com/aftercare-clinic/aftercare/triage"
)

func ExampleClassifier_Triage() {
	c := triage.Default()
	for _, msg := range []string{
		"no dizziness at all today",
		"I felt a bit dizzy getting up from the table but it passed",
		"still really sore on day three",
		"my son is pale and vomiting",
		"shortness of breath and chest pain",
	} {
		f := c.Triage(msg, -1)
		fmt.Printf("%s %v %q\n", f.Level, f.Signs, f.Subject)
	}
	f := c.Triage("I feel dizzy", 3)
	fmt.Println(f.Level, f.Ask.Text)
	// Output:
	// none [] ""
	// none [] ""
	// watch [soreness] ""
	// urgent [pallor vomiting] "child"
	// emergency [breathing chest_pain] ""
	// urgent Does the dizziness settle when you sit or lie down for a few minutes?
}
