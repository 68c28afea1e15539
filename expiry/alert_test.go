package expiry

import (
	"fmt"
	"testing"
	"time"
)

func TestAlertLevel(t *testing.T) {
	tests := []struct {
		lifetime time.Duration
		left     time.Duration // NotAfter - now
		want     Level
	}{
		// 1 year and 90 days: the day thresholds.
		{365 * day, 200 * day, LevelOK},
		{365 * day, 30*day + 1, LevelOK},
		{365 * day, 30 * day, LevelNotice},
		{365 * day, 14*day + 1, LevelNotice},
		{365 * day, 14 * day, LevelWarning},
		{365 * day, 7 * day, LevelUrgent},
		{365 * day, 2*day + 1, LevelUrgent},
		{365 * day, 2 * day, LevelCritical},
		{365 * day, 1, LevelCritical},
		{365 * day, 0, LevelCritical}, // valid at NotAfter itself
		{365 * day, -1, LevelExpired},
		{90 * day, 60 * day, LevelOK},
		{90 * day, 30 * day, LevelNotice},
		{90 * day, 14 * day, LevelWarning},
		{90 * day, 7 * day, LevelUrgent},
		{90 * day, 2 * day, LevelCritical},
		{90 * day, -day, LevelExpired},
		// 45 days: proportional (15 d, 7 d, 3.5 d, 1 d).
		{45 * day, 30 * day, LevelOK},
		{45 * day, 15*day + 1, LevelOK},
		{45 * day, 15 * day, LevelNotice},
		{45 * day, 7 * day, LevelWarning},
		{45 * day, 84 * time.Hour, LevelUrgent},
		{45 * day, day, LevelCritical},
		// 10 days and 6 days.
		{10 * day, 80 * time.Hour, LevelNotice},
		{10 * day, 81 * time.Hour, LevelOK},
		{6 * day, 5 * day, LevelOK},
		{6 * day, 2 * day, LevelNotice},
		{6 * day, 22*time.Hour + 24*time.Minute, LevelWarning},
		{6 * day, 11*time.Hour + 12*time.Minute, LevelUrgent},
		{6 * day, 3*time.Hour + 12*time.Minute, LevelCritical},
		{6 * day, 3*time.Hour + 13*time.Minute, LevelUrgent},
		{6 * day, -time.Second, LevelExpired},
		// Minutes (a test CA's short profile).
		{10 * time.Minute, 5 * time.Minute, LevelOK},
		{10 * time.Minute, 10 * time.Second, LevelCritical},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%v", tt.lifetime, tt.left), func(t *testing.T) {
			v := span(tt.lifetime)
			if got := AlertLevel(v.NotAfter.Add(-tt.left), v); got != tt.want {
				t.Errorf("AlertLevel = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAlertLevelEdges(t *testing.T) {
	v := span(90 * day)
	if got := AlertLevel(t0.Add(-time.Hour), v); got != LevelOK {
		t.Errorf("not yet valid: %v, want ok", got)
	}
	if got := AlertLevel(t0, Validity{}); got != LevelExpired {
		t.Errorf("zero validity: %v, want expired", got)
	}
}

func TestLevelString(t *testing.T) {
	want := []string{"ok", "notice", "warning", "urgent", "critical", "expired"}
	for l := LevelOK; l <= LevelExpired; l++ {
		if l.String() != want[l] {
			t.Errorf("Level(%d) = %q, want %q", int(l), l.String(), want[l])
		}
	}
	if got := Level(-1).String(); got != "Level(-1)" {
		t.Errorf("Level(-1) = %q", got)
	}
}
