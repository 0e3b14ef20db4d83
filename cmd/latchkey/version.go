package main

import (
	"fmt"
	"runtime/debug"
)

func (e *env) version() error {
	v, goVersion := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	_, err := fmt.Fprintf(e.stdout, "latchkey %s %s\n", v, goVersion)
	return err
}
