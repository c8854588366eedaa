// Command argocd-health runs an Argo CD resource health script the way Argo CD runs a health check configured
// in argocd-cm: in gopher-lua, the Lua VM Argo CD embeds, with only the libraries Argo CD opens for such
// scripts (package, base and table; no string, math or io library), the object as the global `obj`, and a
// one-second deadline. It reads Argo CD's health_test.yaml format and prints, for every test case, the case's
// inputPath, the expected health and the health the script returned, as a JSON array.
//
// Usage: argocd-health health.lua health_test.yaml
//
// Argo CD also offers its own reduced `os` library to scripts; it is left out here, so a script that used it
// would fail in this harness (stricter than Argo CD, never more lenient).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testFile struct {
	Tests []struct {
		HealthStatus health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

type result struct {
	InputPath string `json:"inputPath"`
	Expected  health `json:"expected"`
	Actual    health `json:"actual"`
	Error     string `json:"error,omitempty"`
}

// The health codes Argo CD accepts from a script; anything else becomes Unknown.
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: argocd-health health.lua health_test.yaml")
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var tests testFile
	if err := readYAML(os.Args[2], &tests); err != nil {
		fail("%v", err)
	}
	results := []result{}
	for _, t := range tests.Tests {
		r := result{InputPath: t.InputPath, Expected: t.HealthStatus}
		var obj map[string]any
		if err := readYAML(filepath.Join(filepath.Dir(os.Args[2]), t.InputPath), &obj); err != nil {
			fail("%v", err)
		}
		if h, err := run(string(script), obj); err != nil {
			r.Error = err.Error()
		} else {
			r.Actual = h
		}
		results = append(results, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fail("%v", err)
	}
}

func readYAML(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// run evaluates the script for one object, as Argo CD's VM does for scripts without useOpenLibs.
func run(script string, obj map[string]any) (health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return health{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	h := health{Status: lua.LVAsString(table.RawGetString("status")), Message: lua.LVAsString(table.RawGetString("message"))}
	if !validStatus[h.Status] {
		return health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}

// toLua converts decoded JSON/YAML into Lua values the way Argo CD hands objects to scripts: maps become
// tables keyed by string, lists become 1-based arrays, numbers become Lua numbers.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(2)
}
