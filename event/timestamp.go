package event

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// Producer timestamps are accepted exactly when Python 3.11's
// datetime.fromisoformat accepts them, because that is what the original
// service's producers send (datetime.utcnow().isoformat(), naive, with or
// without a 'T') and what its consumers parse timestamps with: every stored
// timestamp stays readable by them. The string is kept verbatim (the hash
// covers it as sent); ParseTimestamp gives the instant.
//
// The grammar, as CPython's C implementation (Modules/_datetimemodule.c)
// parses it, which is what this file follows step by step:
//
//	datetime  = date [ sep time ]            sep: any one character
//	date      = YYYY-MM-DD | YYYYMMDD | YYYY-Www | YYYYWww | YYYY-Www-D | YYYYWwwD
//	time      = hms [ tz ]
//	hms       = HH [ [:]MM [ [:]SS [ (.|,) 1*DIGIT ] ]]   the colons all or none
//	tz        = Z | (+|-) hms                            (+00:00 etc.)
//
// with year 0001-9999, a real calendar date, hour 00-23, minute and second
// 00-59, digits beyond the sixth of a fraction ignored, and an offset
// strictly within ±24 h. Some quirks of the C parser are part of what it
// accepts and so of what we accept (see testdata/timestamps.json, derived by
// running fromisoformat itself): the characters between the seconds and a
// zone offset are not all checked, and an offset's minutes may exceed 59. A
// NUL character ends CPython's scan early (so it accepts text after it); we
// refuse any string containing one.

// TimestampExample is an accepted timestamp, shown in errors.
const TimestampExample = "2026-05-15T03:14:15.123456+00:00"

// ErrBadTimestamp is returned by ParseTimestamp for a string outside the
// grammar.
var ErrBadTimestamp = errors.New("not an ISO 8601 date-time as Python's datetime.fromisoformat reads it, such as " + TimestampExample)

// ParseTimestamp reads a timestamp that ParseRequest accepts and returns
// the instant it names in UTC; a timestamp without an offset (naive) is
// read as UTC. Fraction digits beyond microseconds are ignored, as Python
// ignores them.
func ParseTimestamp(s string) (time.Time, error) {
	p, ok := parseISO(s)
	if !ok {
		return time.Time{}, ErrBadTimestamp
	}
	t := time.Date(p.year, time.Month(p.month), p.day, p.hour, p.minute, p.second, p.usec*1000, time.UTC)
	return t.Add(-p.offset), nil
}

// isoTime is a parsed timestamp: the local date and time, and its offset
// from UTC (0 for a naive timestamp).
type isoTime struct {
	year, month, day, hour, minute, second, usec int
	offset                                       time.Duration
}

// isoInput reads a string as CPython's C parser reads its UTF-8 buffer: a
// byte past the end is the terminating NUL.
type isoInput string

func (s isoInput) at(i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// digits parses n ASCII digits at i into *v (added to what *v holds, as
// CPython's parse_digits does) and returns the position after them, or -1.
func (s isoInput) digits(i int, v *int, n int) int {
	for k := 0; k < n; k++ {
		c := s.at(i)
		if c < '0' || c > '9' {
			return -1
		}
		*v = *v*10 + int(c-'0')
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func parseISO(str string) (isoTime, bool) {
	var t isoTime
	// CPython needs at least 7 characters, and its scan stops at a NUL.
	if utf8.RuneCountInString(str) < 7 || strings.IndexByte(str, 0) >= 0 {
		return t, false
	}
	s := isoInput(sanitize(str))
	sep := s.separator()
	if sep < 0 || !s.date(sep, &t) {
		return t, false
	}
	if len(s) > sep && !s.timePart(sep+1, &t) {
		return t, false
	}
	if t.year < 1 || t.year > 9999 || t.month < 1 || t.month > 12 || t.day < 1 ||
		t.day > daysIn(t.month, t.year) || t.hour > 23 || t.minute > 59 || t.second > 59 {
		return t, false
	}
	return t, true
}

// sanitize is _sanitize_isoformat_str: the separator may be any one
// character, so the first non-ASCII character at one of the places a
// separator can be (characters 7, 8 and 10) becomes 'T'. Any other
// non-ASCII character then fails to parse.
func sanitize(s string) string {
	if isASCII(s) {
		return s
	}
	r := []rune(s)
	for _, pos := range [...]int{7, 8, 10} {
		if pos >= len(r) {
			break
		}
		if r[pos] >= utf8.RuneSelf {
			r[pos] = 'T'
			break
		}
	}
	return string(r)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// separator is _find_isoformat_datetime_separator: where the date ends,
// judged from the date's shape.
func (s isoInput) separator() int {
	n := len(s)
	if n == 7 {
		return 7
	}
	if s[4] == '-' {
		if s[5] != 'W' {
			return 10 // YYYY-MM-DD
		}
		if n < 8 {
			return -1
		}
		if n > 8 && s[8] == '-' {
			if n == 9 {
				return -1
			}
			if n > 10 && isDigit(s[10]) {
				return 8 // YYYY-Www-HH...: the '-' is the separator
			}
			return 10 // YYYY-Www-D
		}
		return 8 // YYYY-Www
	}
	if s[4] != 'W' {
		return 8 // YYYYMMDD
	}
	idx := 7 // YYYYWww or YYYYWwwD
	for idx < n && isDigit(s[idx]) {
		idx++
	}
	if idx < 9 {
		return idx
	}
	if idx%2 == 0 {
		return 7
	}
	return 8
}

// date is parse_isoformat_date; like CPython it reads digits where it
// expects them whatever the separator position, which bounds only the
// optional week day.
func (s isoInput) date(sepAt int, t *isoTime) bool {
	p := s.digits(0, &t.year, 4)
	if p < 0 {
		return false
	}
	dash := s.at(p) == '-'
	if dash {
		p++
	}
	if s.at(p) == 'W' {
		p++
		week, wday := 0, 0
		if p = s.digits(p, &week, 2); p < 0 {
			return false
		}
		if p < sepAt {
			if dash {
				if s.at(p) != '-' {
					return false
				}
				p++
			}
			if p = s.digits(p, &wday, 1); p < 0 {
				return false
			}
		} else {
			wday = 1
		}
		return isoWeekDate(t, week, wday)
	}
	if p = s.digits(p, &t.month, 2); p < 0 {
		return false
	}
	if dash {
		if s.at(p) != '-' {
			return false
		}
		p++
	}
	return s.digits(p, &t.day, 2) >= 0
}

// isoWeekDate turns ISO year t.year, week and weekday into a calendar date.
func isoWeekDate(t *isoTime, week, wday int) bool {
	if t.year < 1 { // CPython's arithmetic for year 0 yields no valid date
		return false
	}
	jan1 := time.Date(t.year, 1, 1, 0, 0, 0, 0, time.UTC).Weekday() // Sunday = 0
	if week < 1 || week > 53 {
		return false
	}
	if week == 53 && !(jan1 == time.Thursday || jan1 == time.Wednesday && daysIn(2, t.year) == 29) {
		return false
	}
	if wday < 1 || wday > 7 {
		return false
	}
	// Monday of week 1 is the Monday of the week holding January 4.
	jan4 := time.Date(t.year, 1, 4, 0, 0, 0, 0, time.UTC)
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	d := monday.AddDate(0, 0, (week-1)*7+wday-1)
	t.year, t.month, t.day = d.Year(), int(d.Month()), d.Day()
	return true
}

// timePart is parse_isoformat_time from position start to the end.
func (s isoInput) timePart(start int, t *isoTime) bool {
	end := len(s)
	tz := start
	for {
		if c := s.at(tz); c == 'Z' || c == '+' || c == '-' {
			break
		}
		if tz++; tz >= end {
			break
		}
	}
	var usec int
	rv := s.hms(start, tz, &t.hour, &t.minute, &t.second, &usec)
	t.usec = usec
	if rv < 0 {
		return false
	}
	if tz >= end {
		return tz == end && rv == 0
	}
	if s.at(tz) == 'Z' {
		return s.at(tz+1) == 0
	}
	sign := time.Duration(1)
	if s.at(tz) == '-' {
		sign = -1
	}
	var h, m, sec, us int
	if s.hms(tz+1, end, &h, &m, &sec, &us) != 0 {
		return false
	}
	secs := h*3600 + m*60 + sec
	if secs == 0 {
		return true // CPython: a zero offset is UTC, whatever its fraction
	}
	off := sign * (time.Duration(secs)*time.Second + time.Duration(us)*time.Microsecond)
	if off <= -24*time.Hour || off >= 24*time.Hour {
		return false
	}
	t.offset = off
	return true
}

// hms is parse_hh_mm_ss_ff over s[start:end]: 0 when it ends there, 1
// when something follows, negative when it does not parse.
func (s isoInput) hms(start, end int, hour, minute, second, usec *int) int {
	*hour, *minute, *second, *usec = 0, 0, 0, 0
	vals := [3]*int{hour, minute, second}
	p := start
	colon := true
	for i := 0; i < 3; i++ {
		if p = s.digits(p, vals[i], 2); p < 0 {
			return -3
		}
		c := s.at(p)
		p++
		if i == 0 {
			colon = c == ':'
		}
		if p >= end {
			if c != 0 {
				return 1
			}
			return 0
		}
		if colon && c == ':' {
			continue
		}
		if c == '.' || c == ',' {
			break
		}
		if colon {
			return -4
		}
		p--
		if i == 2 {
			// CPython leaves the loop here and reads what follows the
			// seconds as a fraction.
			break
		}
	}
	n := end - p
	if n > 6 {
		n = 6
	}
	if p = s.digits(p, usec, n); p < 0 {
		return -3
	}
	for k := n; k < 6; k++ {
		*usec *= 10
	}
	for isDigit(s.at(p)) {
		p++
	}
	if s.at(p) != 0 {
		return 1
	}
	return 0
}

// checkTimestamp returns why ts is not a timestamp we accept, or "".
func checkTimestamp(ts string) string {
	if _, ok := parseISO(ts); ok {
		return ""
	}
	return "must be an ISO 8601 date-time as Python's datetime.fromisoformat reads it, such as " +
		TimestampExample + " or 2026-05-15 03:14:15 (got " + quoteShort(ts) + ")"
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
