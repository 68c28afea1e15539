package hooks

import (
	"bytes"
	"strings"
	"testing"
)

func TestCommandName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"plain", []string{"systemctl", "try-reload-or-restart", "nginx.service"}, "systemctl try-reload-or-restart nginx.service"},
		{"path and flags", []string{"/usr/local/bin/deploy", "--to=host:443", "a@b,c_d%e+f"}, "/usr/local/bin/deploy --to=host:443 a@b,c_d%e+f"},
		{"space is quoted", []string{"a b"}, `"a b"`},
		{"two args differ from one with a space", []string{"a", "b"}, "a b"},
		{"empty argument", []string{"echo", ""}, `echo ""`},
		{"shell characters", []string{"sh", "-c", `echo "$X"; ls`}, `sh -c "echo \"$X\"; ls"`},
		{"control characters", []string{"x\ny"}, `"x\ny"`},
		{"empty argv", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Command(tt.argv...).Name(); got != tt.want {
				t.Errorf("Name() = %s, want %s", got, tt.want)
			}
		})
	}
	if Reload("nginx.service").Name() != "systemctl try-reload-or-restart nginx.service" {
		t.Errorf("Reload name %q", Reload("nginx.service").Name())
	}
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int
		writes []int
	}{
		{"fits", 10, []int{3, 3}},
		{"exact", 10, []int{10}},
		{"one big write", 10, []int{25}},
		{"many small writes", 10, []int{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}},
		{"mixed", 16, []int{1, 15, 2, 40, 7, 9, 16, 0, 31, 1}},
		{"no limit keeps nothing", 0, []int{5, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &tailBuffer{limit: tt.limit}
			var all []byte
			next := byte(0)
			for _, n := range tt.writes {
				p := make([]byte, n)
				for i := range p {
					p[i] = next
					next++
				}
				all = append(all, p...)
				if got, err := b.Write(p); got != n || err != nil {
					t.Fatalf("Write = %d, %v", got, err)
				}
				if cap(b.buf) > 2*tt.limit {
					t.Fatalf("buffer capacity %d exceeds 2*limit", cap(b.buf))
				}
			}
			out := b.captured()
			want := all[max(0, len(all)-tt.limit):]
			if !bytes.Equal(out.Tail, want) || out.Total != int64(len(all)) {
				t.Errorf("Tail %v Total %d, want %v %d", out.Tail, out.Total, want, len(all))
			}
			if out.Truncated() != (len(all) > tt.limit) {
				t.Errorf("Truncated = %v", out.Truncated())
			}
		})
	}
}

func TestOutputStringInvalidUTF8(t *testing.T) {
	t.Parallel()
	o := output{Tail: []byte("ok \xff\xfe"), Total: 10}
	if got := o.String(); got != "[… 5 earlier bytes omitted]\nok \uFFFD" {
		t.Errorf("String() = %q", got)
	}
}

func TestCommandErrorWithoutOutput(t *testing.T) {
	t.Parallel()
	e := &commandError{Name: "x", Err: errEmptyCommand}
	if got := e.Error(); strings.Contains(got, "output") || got != `hooks: command [x]: hooks: empty command` {
		t.Errorf("Error() = %q", got)
	}
}
