//go:build !wasip1

package main

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
)

const envoyExample = "../../examples/envoy/envoy.yaml"

// path walks a decoded YAML document: string keys index maps, ints index lists.
func path(t *testing.T, v any, steps ...any) any {
	t.Helper()
	for _, s := range steps {
		switch k := s.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", steps, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no element %d", steps, k)
			}
			v = l[k]
		}
	}
	return v
}

// TestEnvoyExample: examples/envoy/envoy.yaml is YAML, names its placeholders, puts the Wasm
// filter (V8, the TinyGo build) before the router, and its plugin configuration, once the
// placeholders are filled in, is accepted by the filter's parser, names a cluster the file
// defines, and works: on the filter under the emulator, the refresh it configures loads the
// realm's snapshot from a store laid out as configured, and requests are decided from it.
// No Envoy runs here: Envoy's own validation of the file (envoy --mode validate) was not run.
func TestEnvoyExample(t *testing.T) {
	raw, err := os.ReadFile(envoyExample)
	if err != nil {
		t.Fatal(err)
	}
	var placeholders []string
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)\}`).FindAllStringSubmatch(string(raw), -1) {
		if !slices.Contains(placeholders, m[1]) {
			placeholders = append(placeholders, m[1])
		}
	}
	slices.Sort(placeholders)
	if want := []string{"LATCHKEY_MANIFEST_KEY", "LATCHKEY_REALM", "LATCHKEY_SNAPSHOT_HOST"}; !slices.Equal(placeholders, want) {
		t.Fatalf("placeholders %v, want %v", placeholders, want)
	}
	if _, err := config.Parse([]byte(pluginConfig(t, raw))); err == nil {
		t.Fatal("the plugin configuration parses with its placeholders left in")
	}

	b := agrenting(t)
	values := map[string]string{
		"LATCHKEY_MANIFEST_KEY":  config.ManifestKeyText(b.Trusted),
		"LATCHKEY_REALM":         b.Contents.Realm,
		"LATCHKEY_SNAPSHOT_HOST": "snapshots.example.com",
	}
	filled := []byte(os.Expand(string(raw), func(name string) string { return values[name] }))
	cfg, err := config.Parse([]byte(pluginConfig(t, filled)))
	if err != nil {
		t.Fatalf("the example's plugin configuration: %v", err)
	}
	if cfg.Refresh == nil || cfg.Refresh.Realm != "agrenting" || cfg.Refresh.Authority != "snapshots.example.com" || cfg.Snapshot != nil {
		t.Fatalf("parsed %+v", cfg)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(filled, &doc); err != nil {
		t.Fatal(err)
	}
	var clusters []string
	for i := range path(t, doc, "static_resources", "clusters").([]any) {
		clusters = append(clusters, path(t, doc, "static_resources", "clusters", i, "name").(string))
	}
	if !slices.Contains(clusters, cfg.Refresh.Cluster) {
		t.Fatalf("refresh.cluster %q is not among the clusters %v", cfg.Refresh.Cluster, clusters)
	}

	// The configuration at work: the store it names, the realm's snapshot published under
	// its path prefix (the clock fixed at the fixture's: a test build).
	cfg.NowOverride = b.Now * 1e9
	for _, compiler := range compilers {
		t.Run(compiler, func(t *testing.T) {
			s := newStore(t, cfg.Refresh.PathPrefix)
			s.publish(t, b)
			f := startFilter(t, compiler, config.Marshal(cfg))
			defer f.close()
			if got := f.get(t, wallet, "Authorization", "Bearer "+b.Keys["user"]).Status; got != 503 {
				t.Fatalf("before the first refresh: status %d", got)
			}
			calls := f.serve(t, map[string]string{cfg.Refresh.Cluster: s.srv.URL})
			if len(calls) == 0 || header(calls[0], ":authority") != "snapshots.example.com" || header(calls[0], ":path") != "/latchkey/agrenting/manifest" {
				t.Fatalf("calls %+v", calls)
			}
			if got := f.get(t, wallet, "Authorization", "Bearer "+b.Keys["user"]).Status; got != 299 {
				t.Fatalf("after the first refresh: status %d (logs:\n%s)", got, f.logs())
			}
		})
	}
}

// pluginConfig is the configuration text of the example's Wasm filter, checking the filter's
// place and VM settings on the way.
func pluginConfig(t *testing.T, raw []byte) string {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", envoyExample, err)
	}
	hcm := path(t, doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0)
	if path(t, hcm, "name") != "envoy.filters.network.http_connection_manager" {
		t.Fatalf("first network filter: %v", path(t, hcm, "name"))
	}
	filters := path(t, hcm, "typed_config", "http_filters").([]any)
	if len(filters) != 2 || path(t, filters[0], "name") != "envoy.filters.http.wasm" || path(t, filters[1], "name") != "envoy.filters.http.router" {
		t.Fatalf("http filters %v: want the Wasm filter, then the router", filters)
	}
	wasm := path(t, filters[0], "typed_config", "config")
	if path(t, wasm, "vm_config", "runtime") != "envoy.wasm.runtime.v8" ||
		!strings.HasSuffix(path(t, wasm, "vm_config", "code", "local", "filename").(string), "/proxywasm-tinygo.wasm") ||
		path(t, wasm, "fail_open") != false {
		t.Fatalf("Wasm filter settings %v", wasm)
	}
	if path(t, wasm, "configuration", "@type") != "type.googleapis.com/google.protobuf.StringValue" {
		t.Fatal("the plugin configuration is not a StringValue")
	}
	return path(t, wasm, "configuration", "value").(string)
}

// Host functions Envoy's proxy-wasm host (proxy-wasm-cpp-host) has long provided: the ABI's
// (module env, prefix proxy_) and WASI's (wasi_snapshot_preview1), as its exports.h lists
// them. The Go-built filter needs more WASI functions (Go 1.24's wasip1 reactor), which the
// SDK says Envoy 1.33 and later provide.
var (
	envoyABI = []string{"log", "get_status", "set_property", "get_property", "send_local_response",
		"get_shared_data", "set_shared_data", "register_shared_queue", "resolve_shared_queue",
		"dequeue_shared_queue", "enqueue_shared_queue", "get_header_map_value", "add_header_map_value",
		"replace_header_map_value", "remove_header_map_value", "get_header_map_pairs", "set_header_map_pairs",
		"get_header_map_size", "get_buffer_status", "get_buffer_bytes", "set_buffer_bytes", "http_call",
		"grpc_call", "grpc_stream", "grpc_close", "grpc_cancel", "grpc_send", "set_tick_period_milliseconds",
		"get_current_time_nanoseconds", "define_metric", "increment_metric", "record_metric", "get_metric",
		"set_effective_context", "done", "call_foreign_function", "get_configuration", "continue_request",
		"continue_response", "clear_route_cache", "continue_stream", "close_stream", "get_log_level"}
	envoyWASI = []string{"fd_write", "fd_read", "fd_seek", "fd_close", "fd_fdstat_get", "environ_get",
		"environ_sizes_get", "args_get", "args_sizes_get", "proc_exit", "clock_time_get", "random_get"}
)

// TestModuleImports: the release TinyGo build imports only host functions Envoy provides, and
// both builds export what a proxy-wasm host calls (the ABI version, the callbacks, memory,
// _initialize).
func TestModuleImports(t *testing.T) {
	for _, build := range []string{"tinygo-release", "go-release"} {
		t.Run(build, func(t *testing.T) {
			ctx := context.Background()
			r := wazero.NewRuntime(ctx)
			defer r.Close(ctx)
			m, err := r.CompileModule(ctx, guestWasm(t, build))
			if err != nil {
				t.Fatal(err)
			}
			var extra []string
			for _, f := range m.ImportedFunctions() {
				mod, name, _ := f.Import()
				switch {
				case mod == "env" && strings.HasPrefix(name, "proxy_") && slices.Contains(envoyABI, name[len("proxy_"):]):
				case mod == "wasi_snapshot_preview1" && slices.Contains(envoyWASI, name):
				default:
					extra = append(extra, mod+"."+name)
				}
			}
			if build == "tinygo-release" && len(extra) > 0 {
				t.Fatalf("imports Envoy may not provide: %v", extra)
			}
			if len(extra) > 0 {
				t.Logf("needs Envoy 1.33 or later for %v", extra)
			}
			exports := m.ExportedFunctions()
			for _, name := range []string{"_initialize", "proxy_abi_version_0_2_0", "proxy_on_memory_allocate", "proxy_on_context_create",
				"proxy_on_configure", "proxy_on_tick", "proxy_on_request_headers", "proxy_on_http_call_response"} {
				if _, ok := exports[name]; !ok {
					t.Errorf("no export %s", name)
				}
			}
			if len(m.ExportedMemories()) != 1 {
				t.Error("no exported memory")
			}
		})
	}
}
