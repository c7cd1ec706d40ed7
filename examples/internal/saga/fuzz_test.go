package saga

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plexushq/plexus/eventstore"
)

// FuzzDecodeOrder: any body is refused with 400 or 422, or becomes a
// place command whose ids can name streams and messages.
func FuzzDecodeOrder(f *testing.F) {
	for _, s := range []string{
		`{"id":"o-1","userId":"ada","sku":"book","quantity":2}`,
		`{"userId":"ada","sku":"book","quantity":1}`,
		`{"userId":"a/b","sku":"book","quantity":1}`,
		`{"userId":"ada","sku":"book","quantity":0}`,
		`{"userId":"ada","sku":"book","quantity":2,"extra":1}`,
		`{"userId":"ada"`, ``, `null`, `[]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(body))
		c, code, detail := DecodeOrder(r)
		switch code {
		case 0:
			if c.Step != StepPlace || !validID(c.OrderID) || !validID(c.UserID) || !validID(c.SKU) || c.Quantity < 1 || c.Quantity > 1000 {
				t.Fatalf("accepted %q as %+v", body, c)
			}
			if !eventstore.ValidStreamName(OrderStream(c.OrderID)) || !eventstore.ValidStreamName(StockStream(c.SKU)) ||
				!eventstore.ValidStreamName(AccountStream(c.UserID)) {
				t.Fatalf("accepted %+v: its streams cannot be named", c)
			}
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			if detail == "" {
				t.Fatalf("%d without a reason", code)
			}
		default:
			t.Fatalf("status %d for %q", code, body)
		}
	})
}

// FuzzFold: the folds take any event type and data (what another writer
// may have appended to these streams) without panicking, and count every
// event in the order's version and history.
func FuzzFold(f *testing.F) {
	f.Add(OrderPlaced, `{"orderId":"o","userId":"u","sku":"s","quantity":2,"amount":10}`)
	f.Add(StockReserved, `{"orderId":"o","quantity":-3}`)
	f.Add(AccountCharged, `{"orderId":"o","amount":"x"}`)
	f.Add(StockReleased, `not json`)
	f.Fuzz(func(t *testing.T, typ, data string) {
		e := eventstore.Envelope{Type: typ, Data: json.RawMessage(data), Version: 1}
		evs := []eventstore.Envelope{e}
		o := foldOrder("o", evs)
		if o.Version != 1 || len(o.History) != 1 {
			t.Fatalf("order %+v", o)
		}
		_ = o.next()
		st := foldStock("s", evs)
		_ = st.Available()
		_ = foldAccount("u", evs)
	})
}
