// Differential check of greetd's Go-duration parser against Go's own time.ParseDuration.
//
// scripts/fuzz.sh runs the duration fuzz target over a corpus with GREETD_FUZZ_PRINT=1, which
// prints one line per input: `<hex of input> ok <nanoseconds>` or `<hex of input> err <message>`
// (`-` for the empty input). This program reads those lines on standard input, parses each input
// with time.ParseDuration, and prints every disagreement. Inputs that are not valid UTF-8 are
// skipped (the Swift side sees them repaired, Go sees the raw bytes). greetd names overflow
// "out of range" where Go says "invalid duration": that difference is expected.
//
// Exit status: 0 if all agree, 1 if any differ, 2 on bad input.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	seen := map[string]bool{}
	compared, skipped, differ := 0, 0, 0
	for in.Scan() {
		line := in.Text()
		parts := strings.SplitN(line, " ", 3)
		if len(parts) < 3 || (parts[1] != "ok" && parts[1] != "err") {
			continue // libFuzzer's own chatter
		}
		if seen[parts[0]] {
			continue
		}
		seen[parts[0]] = true
		var raw []byte
		if parts[0] != "-" {
			var err error
			if raw, err = hex.DecodeString(parts[0]); err != nil {
				fmt.Fprintf(os.Stderr, "goref: bad hex %q\n", parts[0])
				os.Exit(2)
			}
		}
		if !utf8.Valid(raw) {
			skipped++
			continue
		}
		compared++
		input := string(raw)
		goValue, goErr := time.ParseDuration(input)
		report := func(format string, args ...any) {
			differ++
			fmt.Printf("DIFFER %s (input %q): %s\n", parts[0], input, fmt.Sprintf(format, args...))
		}
		switch {
		case parts[1] == "ok" && goErr == nil:
			ns, err := strconv.ParseInt(parts[2], 10, 64)
			if err != nil {
				fmt.Fprintf(os.Stderr, "goref: bad value %q\n", parts[2])
				os.Exit(2)
			}
			if ns != int64(goValue) {
				report("greetd %dns, Go %dns", ns, int64(goValue))
			}
		case parts[1] == "ok":
			report("greetd %sns, Go error %q", parts[2], goErr.Error())
		case goErr == nil:
			report("greetd error %q, Go %dns", parts[2], int64(goValue))
		default:
			ours, theirs := parts[2], goErr.Error()
			if ours == theirs {
				break
			}
			// greetd: `time: duration "x" is out of range (max …)`; Go: `time: invalid duration "x"`.
			const goInvalid = "time: invalid duration "
			if strings.HasPrefix(theirs, goInvalid) &&
				ours == "time: duration "+strings.TrimPrefix(theirs, goInvalid)+" is out of range (max 2562047h47m16.854775807s)" {
				break
			}
			report("greetd error %q, Go error %q", ours, theirs)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "goref: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("go-diff: %d inputs compared with Go %s's time.ParseDuration, %d skipped (invalid UTF-8), %d differ\n",
		compared, strings.TrimPrefix(runtime.Version(), "go"), skipped, differ)
	if differ > 0 {
		os.Exit(1)
	}
}
