// Package staffgate is the one place that decides who speaks as clinic
// staff and which staff commands exist. Every adapter (Telegram, Discord,
// the console) translates what it heard into a Who and asks a Gate, and
// tells staff commands from patient text with IsCommand; the service asks
// again for each command it runs (its second gate) and reads commands with
// Parse. No adapter keeps a list of staff, roles or commands of its own.
//
// # Who is staff
//
// Someone is staff when they speak in a staff chat (every member of the
// clinic's Telegram staff group is staff), or are a configured staff user,
// or hold a configured staff role (Discord). Where a staff member may give
// commands (Telegram: the staff group or a private chat; Discord: the
// staff channel) is the adapter's routing, not part of being staff.
//
// # Concurrency
//
// A Gate is safe for concurrent use; AddChat may be called while others
// ask Staff.
package staffgate

import (
	"sync"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Rules are what a Gate knows, in platform-qualified IDs.
type Rules struct {
	// Chats are group chats whose every member is staff: "telegram:-1001".
	Chats []engine.PatientID
	// Users are staff members by platform user ID: "telegram:42",
	// "discord:80351110224678912".
	Users []string
	// Roles are platform roles whose holders are staff: "discord:<role>".
	Roles []string
}

// Gate decides who is staff. Create it with New; the zero Gate lets
// nobody through.
type Gate struct {
	mu    sync.RWMutex
	chats map[engine.PatientID]bool
	users map[string]bool
	roles map[string]bool
}

// New returns a gate for r.
func New(r Rules) *Gate {
	g := &Gate{chats: map[engine.PatientID]bool{}, users: map[string]bool{}, roles: map[string]bool{}}
	for _, c := range r.Chats {
		g.chats[c] = true
	}
	for _, u := range r.Users {
		g.users[u] = true
	}
	for _, x := range r.Roles {
		g.roles[x] = true
	}
	return g
}

// AddChat makes chat a staff chat too: a Telegram staff group that became
// a supergroup keeps its members staff under its new ID (the old one stays,
// as configured).
func (g *Gate) AddChat(chat engine.PatientID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.chats == nil {
		g.chats = map[engine.PatientID]bool{}
	}
	g.chats[chat] = true
}

// Who is someone an adapter heard from, translated to platform-qualified
// IDs. Empty fields are unknown.
type Who struct {
	// User is the sender: "telegram:42".
	User string
	// Chat is where they spoke: "telegram:-1001" (the staff group), or
	// their private chat with the bot.
	Chat engine.PatientID
	// Roles are the sender's platform roles there: "discord:<role>".
	Roles []string
}

// Staff reports whether w speaks as staff: in a staff chat, as a staff
// user, or holding a staff role.
func (g *Gate) Staff(w Who) bool {
	if g == nil {
		return false
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if (w.Chat != "" && g.chats[w.Chat]) || (w.User != "" && g.users[w.User]) {
		return true
	}
	for _, r := range w.Roles {
		if g.roles[r] {
			return true
		}
	}
	return false
}

// StaffChat reports whether chat is a staff chat (whose every member is
// staff).
func (g *Gate) StaffChat(chat engine.PatientID) bool {
	if g == nil {
		return false
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.chats[chat]
}
