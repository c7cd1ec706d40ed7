package eventstore

import (
	"cmp"
	"context"
	"slices"
)

// readAllBackward pages the global order backwards: the matching events at
// or before q.FromPosition (the newest when 0), newest first. It reads
// windows of messages forwards, from just before what it has read
// backwards, each twice as wide as the last, until it has the page or
// reaches the first message. NextPosition is the position to pass for the
// next (older) page; 0 once the first event is in.
func (s *Store) readAllBackward(ctx context.Context, q Query) (Page, error) {
	l := s.layout()
	limit := limitOr(q.Limit)
	page := Page{Events: []Envelope{}}
	top := q.FromPosition
	hi, _ := l.at(top)
	if top == 0 {
		last, err := s.lastSeq(ctx)
		if err != nil || last == 0 {
			return page, err
		}
		hi, top = last, l.lastPos(last)
	}
	since, err := s.startPosition(ctx, Query{Since: q.Since})
	if err != nil {
		return Page{}, err
	}
	if !q.Since.IsZero() && since == 0 {
		return page, nil // nothing stored since then
	}
	types := typeSet(q.Types)
	d := &decoder{l: l}
	var got []Envelope
	for width := uint64(limit + 1); hi > 0; width *= 2 {
		lo := hi - min(hi-1, width-1)
		var win []Envelope
		for _, f := range filterSubjects(q.Category, q.Types) {
			err := s.readDirectUpTo(ctx, lo, hi, f, int(hi-lo+1), func(m message) (bool, error) {
				return true, d.events(m, func(e *storedEvent) error {
					if e.Position <= top && e.Position >= since && types.has(e.Type) {
						win = append(win, e.Envelope)
					}
					return nil
				})
			})
			if err != nil {
				return Page{}, err
			}
		}
		slices.SortFunc(win, func(a, b Envelope) int { return cmp.Compare(b.Position, a.Position) })
		got = append(got, win...)
		if len(got) >= limit || lo == 1 || (since > 0 && l.pos(lo, 0) <= since) {
			break
		}
		hi = lo - 1
	}
	if len(got) > limit {
		got = got[:limit]
	}
	page.Events = got
	if n := len(got); n == limit && got[n-1].Position > 1 {
		page.NextPosition = got[n-1].Position - 1
	}
	return page, nil
}

// lastSeq is the sequence of the stream's last message; 0 when empty.
func (s *Store) lastSeq(ctx context.Context) (uint64, error) {
	m, err := s.getOne(ctx, getRequest{LastFor: subjectRoot + ">"})
	if err != nil || m == nil {
		return 0, err
	}
	dm, err := directMessage(m)
	return dm.seq, err
}
