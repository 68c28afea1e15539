package expiry

import (
	"strconv"
	"time"
)

// Level is an alert level for a certificate's remaining validity, ordered by
// severity: a larger Level is worse. The zero Level is LevelOK.
type Level int

// The alert levels, from common operations practice: 30, 14, 7 and 2 days
// left, for a 90-day certificate. See AlertLevel for other lifetimes.
const (
	LevelOK       Level = iota // more than 30 days left
	LevelNotice                // 30 days or less: renewal should be under way (DefaultPolicy renews here)
	LevelWarning               // 14 days or less: renewal has been failing for a while
	LevelUrgent                // 7 days or less: act now
	LevelCritical              // 2 days or less: expiry is imminent
	LevelExpired               // expired
)

// alertDays are the thresholds of LevelNotice..LevelCritical in days, for a
// certificate of referenceLifetime.
var alertDays = [...]time.Duration{30, 14, 7, 2}

// referenceLifetime is the lifetime the day thresholds were made for.
const referenceLifetime = 90 * 24 * time.Hour

var levelNames = [...]string{"ok", "notice", "warning", "urgent", "critical", "expired"}

// String returns a short lower-case name, suitable as a metric label.
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return "Level(" + strconv.Itoa(int(l)) + ")"
	}
	return levelNames[l]
}

// MarshalText implements encoding.TextMarshaler with String.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// AlertLevel returns the alert level of a certificate valid over v at now.
//
// The thresholds are 30, 14, 7 and 2 days left (LevelNotice, LevelWarning,
// LevelUrgent, LevelCritical) for certificates whose lifetime is 90 days or
// more. For shorter lifetimes they shrink in proportion, to 30/90, 14/90,
// 7/90 and 2/90 of the lifetime, so that a healthy short-lived certificate
// does not sit at a warning level for most of its life:
//
//	lifetime   notice    warning   urgent   critical
//	1 year     30 d      14 d      7 d      2 d
//	90 days    30 d      14 d      7 d      2 d
//	45 days    15 d      7 d       3.5 d    1 d
//	6 days     2 d       22.4 h    11.2 h   3.2 h
//
// A certificate past NotAfter is LevelExpired. The level only measures time
// left: a certificate that is not yet valid has more than its lifetime left
// and is LevelOK (DecideAt does not renew it: see rule 4), and an invalid
// period that has not "expired" is LevelOK too.
func AlertLevel(now time.Time, v Validity) Level {
	if v.Expired(now) {
		return LevelExpired
	}
	left := v.Remaining(now)
	lifetime := v.Lifetime()
	level := LevelOK
	for i, days := range alertDays {
		threshold := days * 24 * time.Hour
		if lifetime < referenceLifetime {
			threshold = scaled(lifetime, float64(days)/90)
		}
		if left <= threshold {
			level = LevelNotice + Level(i)
		}
	}
	return level
}
