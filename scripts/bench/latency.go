package main

import (
	"log"
	"net"
	"net/url"
	"sync"
	"time"
)

// delayProxy stands between seafbak and the test file server like a WAN link with a
// round-trip time of rtt: every chunk read from one side is written to the other
// rtt/2 later, in order, without limiting bandwidth (what tc netem's delay does; this
// machine has no netem). Each connection gets its own delay line per direction.
type delayProxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
}

// startDelayProxy forwards connections to rawURL's host and returns the URL through it.
func startDelayProxy(rawURL string, rtt time.Duration) string {
	u, err := url.Parse(rawURL)
	must(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	p := &delayProxy{ln: ln, target: u.Host, oneWay: rtt / 2}
	go p.serve()
	u.Host = ln.Addr().String()
	return u.String()
}

func (p *delayProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				log.Printf("delay proxy: %v", err)
				c.Close()
				return
			}
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); p.line(s, c) }()
			go func() { defer wg.Done(); p.line(c, s) }()
			wg.Wait()
			c.Close()
			s.Close()
		}()
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// line copies from src to dst, each chunk rtt/2 after it was read; src's end is passed
// on (half-close) once everything before it is delivered.
func (p *delayProxy) line(dst, src net.Conn) {
	chunks := make(chan chunk, 4096)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now().Add(p.oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			for range chunks { // drain so the reader can end
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}
