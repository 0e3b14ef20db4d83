//go:build wasip1

package main

//lint:file-ignore U1000 the host reaches this code through //go:wasmexport and //go:wasmimport, which staticcheck does not follow

import "unsafe"

// The http_handler imports of the http-wasm handler ABI
// (https://http-wasm.io/http-handler-abi/) this guest uses.

const (
	kindRequest  = 0 // header_kind / body_kind: request
	kindResponse = 1 // header_kind / body_kind: response
	logError     = 2 // log_level: error
)

//go:wasmimport http_handler get_config
func hostGetConfig(buf unsafe.Pointer, bufLimit uint32) uint32

//go:wasmimport http_handler log
func hostLog(level int32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport http_handler get_method
func hostGetMethod(buf unsafe.Pointer, bufLimit uint32) uint32

//go:wasmimport http_handler get_uri
func hostGetURI(buf unsafe.Pointer, bufLimit uint32) uint32

//go:wasmimport http_handler set_uri
func hostSetURI(uri unsafe.Pointer, uriLen uint32)

//go:wasmimport http_handler get_header_values
func hostGetHeaderValues(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, bufLimit uint32) uint64

//go:wasmimport http_handler set_header_value
func hostSetHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler add_header_value
func hostAddHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler remove_header
func hostRemoveHeader(kind uint32, name unsafe.Pointer, nameLen uint32)

//go:wasmimport http_handler write_body
func hostWriteBody(kind uint32, body unsafe.Pointer, bodyLen uint32)

//go:wasmimport http_handler set_status_code
func hostSetStatusCode(code uint32)

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

const (
	getMethod = iota
	getURI
)

// get calls get_method or get_uri (TinyGo takes no imported function as a value).
func get(which int, buf []byte) uint32 {
	if which == getMethod {
		return hostGetMethod(ptr(buf), uint32(len(buf)))
	}
	return hostGetURI(ptr(buf), uint32(len(buf)))
}

// fill reads get_method or get_uri into *buf, growing it once when the value is longer, and
// returns the value (a view of *buf).
func fill(buf *[]byte, which int) []byte {
	n := get(which, *buf)
	if int(n) > len(*buf) {
		*buf = make([]byte, n)
		n = get(which, *buf)
		if int(n) > len(*buf) {
			return nil
		}
	}
	return (*buf)[:n]
}

// firstHeaderValue returns the first value of the request header name, if any.
func firstHeaderValue(buf *[]byte, name string) ([]byte, bool) {
	np := unsafe.Pointer(unsafe.StringData(name))
	nl := uint32(len(name))
	cl := hostGetHeaderValues(kindRequest, np, nl, ptr(*buf), uint32(len(*buf)))
	if cl == 0 {
		return nil, false
	}
	if n := uint32(cl); int(n) > len(*buf) {
		*buf = make([]byte, n)
		cl = hostGetHeaderValues(kindRequest, np, nl, ptr(*buf), uint32(len(*buf)))
		if cl == 0 || int(uint32(cl)) > len(*buf) {
			return nil, false
		}
	}
	// Values arrive NUL-separated: the first is the one the core reads.
	v := (*buf)[:uint32(cl)]
	for i, c := range v {
		if c == 0 {
			return v[:i], true
		}
	}
	return v, true
}

func setHeader(kind uint32, name, value []byte) {
	hostSetHeaderValue(kind, ptr(name), uint32(len(name)), ptr(value), uint32(len(value)))
}

func addHeader(kind uint32, name, value []byte) {
	hostAddHeaderValue(kind, ptr(name), uint32(len(name)), ptr(value), uint32(len(value)))
}

func removeHeader(kind uint32, name string) {
	hostRemoveHeader(kind, unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)))
}

func logErr(msg string) {
	hostLog(logError, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
