package layout

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strings"
	"testing"
)

// A name in the request-path sketch: package.Type, package.Func or
// package.Type.Method, by the package's name (legacy for
// legacy-passthrough).
var pathName = regexp.MustCompile(`\b([a-z][a-z0-9]*)\.([A-Z][A-Za-z0-9]*)(?:\.([A-Za-z][A-Za-z0-9]*))?`)

// The README's request path names only what the code declares, so the
// sketch cannot outlive a rename or a move.
func TestReadmeRequestPathNamesDeclaredCode(t *testing.T) {
	section := readmeSection(t, "Layout")
	start := strings.Index(section, "### Request path")
	if start < 0 {
		t.Fatal("the README's Layout section has no Request path")
	}
	fence := strings.SplitN(section[start:], "```", 3)
	if len(fence) < 3 {
		t.Fatal("the Request path has no fenced sketch")
	}
	sketch := fence[1]

	declared := map[string]map[string]bool{} // package name → its names
	goFiles(t, func(path, _ string, b []byte) {
		if strings.HasSuffix(path, "_test.go") {
			return
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, b, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		names := declared[f.Name.Name]
		if names == nil {
			names = map[string]bool{}
			declared[f.Name.Name] = names
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = true
				} else if recv := receiverType(d.Recv.List[0].Type); recv != "" {
					names[recv+"."+d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					ts, ok := s.(*ast.TypeSpec)
					if !ok {
						continue
					}
					names[ts.Name.Name] = true
					if it, ok := ts.Type.(*ast.InterfaceType); ok {
						for _, m := range it.Methods.List {
							for _, n := range m.Names {
								names[ts.Name.Name+"."+n.Name] = true
							}
						}
					}
				}
			}
		}
	})

	found := pathName.FindAllStringSubmatch(sketch, -1)
	if len(found) < 10 {
		t.Fatalf("found only %d names in the sketch: the scan is broken", len(found))
	}
	for _, m := range found {
		names, ok := declared[m[1]]
		if !ok {
			t.Errorf("the request path names %s, but no package is called %s", m[0], m[1])
			continue
		}
		if !names[m[2]] {
			t.Errorf("the request path names %s, but package %s declares no %s", m[0], m[1], m[2])
		} else if m[3] != "" && !names[m[2]+"."+m[3]] {
			t.Errorf("the request path names %s, but %s.%s has no method %s", m[0], m[1], m[2], m[3])
		}
	}
}

// receiverType is the type name of a method's receiver: T, *T, T[P].
func receiverType(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
