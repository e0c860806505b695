// Fills an Ollama Modelfile TEMPLATE the way Ollama does, with Go's own text/template.
//
// The semantics follow Ollama's server and template package:
//   - the Modelfile's SYSTEM enters as a first system message when the chat does not start with one;
//   - consecutive messages of one role are merged (joined by a blank line), system messages kept;
//   - .System is every system message joined by a blank line;
//   - a template that mentions .Messages gets .System, .Messages, .Tools and an empty .Response;
//   - an old-style template (.Prompt / .Response) runs once per exchange, and for the final,
//     unanswered one only up to its .Response;
//   - a template mentioning neither .Messages nor .Response gets {{ .Response }} appended;
//   - missing keys render as zero values; the "json" function is available.
//
// stdin:  {"template": "...", "system": "<Modelfile SYSTEM>", "messages": [{"role": "...", "content": "..."}],
//          "tools": [...]}
// stdout: the rendered prompt, exactly.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
)

type Message struct {
	Role      string           `json:"role"`
	Content   string           `json:"content"`
	Thinking  string           `json:"thinking,omitempty"`
	ToolCalls []map[string]any `json:"tool_calls,omitempty"`
}

type Input struct {
	Template string           `json:"template"`
	System   string           `json:"system"`
	Messages []Message        `json:"messages"`
	Tools    []map[string]any `json:"tools"`
}

var funcs = template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}

// identifiers lists the field and variable names a template mentions, lower-cased.
func identifiers(n parse.Node) []string {
	var out []string
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				out = append(out, identifiers(c)...)
			}
		}
	case *parse.ActionNode:
		out = identifiers(n.Pipe)
	case *parse.TemplateNode:
		if n.Pipe != nil {
			out = identifiers(n.Pipe)
		}
	case *parse.IfNode:
		out = branch(&n.BranchNode)
	case *parse.RangeNode:
		out = branch(&n.BranchNode)
	case *parse.WithNode:
		out = branch(&n.BranchNode)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				out = append(out, identifiers(a)...)
			}
		}
	case *parse.FieldNode:
		out = append(out, n.Ident...) // a copy: the names in the tree must stay as they are
	case *parse.VariableNode:
		out = append(out, n.Ident...)
	}
	return out
}

func branch(b *parse.BranchNode) []string {
	out := identifiers(b.Pipe)
	out = append(out, identifiers(b.List)...)
	if b.ElseList != nil {
		out = append(out, identifiers(b.ElseList)...)
	}
	return out
}

func mentions(t *template.Template, name string) bool {
	for _, id := range identifiers(t.Tree.Root) {
		if strings.ToLower(id) == name {
			return true
		}
	}
	return false
}

// collate merges consecutive messages of one role and collects the system messages.
func collate(msgs []Message) (string, []Message) {
	var system []string
	var out []Message
	for _, m := range msgs {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role && m.Role != "tool" {
			out[len(out)-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, m)
		}
	}
	return strings.Join(system, "\n\n"), out
}

// cutAfterResponse drops every node from the first .Response on: the open exchange ends there.
func cutAfterResponse(n parse.Node, cut *bool) parse.Node {
	if *cut {
		return nil
	}
	switch t := n.(type) {
	case *parse.FieldNode:
		for _, id := range t.Ident {
			if id == "Response" {
				*cut = true
				return nil
			}
		}
	case *parse.ListNode:
		var kept []parse.Node
		for _, c := range t.Nodes {
			if k := cutAfterResponse(c, cut); k != nil {
				kept = append(kept, k)
			}
		}
		t.Nodes = kept
	case *parse.IfNode:
		cutBranch(&t.BranchNode, cut)
	case *parse.RangeNode:
		cutBranch(&t.BranchNode, cut)
	case *parse.WithNode:
		cutBranch(&t.BranchNode, cut)
	case *parse.ActionNode:
		if cutAfterResponse(t.Pipe, cut) == nil {
			return nil
		}
	case *parse.PipeNode:
		var cmds []*parse.CommandNode
		for _, c := range t.Cmds {
			var args []parse.Node
			for _, a := range c.Args {
				if k := cutAfterResponse(a, cut); k != nil {
					args = append(args, k)
				}
			}
			if len(args) > 0 {
				c.Args = args
				cmds = append(cmds, c)
			}
		}
		if len(cmds) == 0 {
			return nil
		}
		t.Cmds = cmds
	}
	return n
}

func cutBranch(b *parse.BranchNode, cut *bool) {
	b.List = cutAfterResponse(b.List, cut).(*parse.ListNode)
	if b.ElseList != nil {
		b.ElseList = cutAfterResponse(b.ElseList, cut).(*parse.ListNode)
	}
}

func render(in Input) (string, error) {
	t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template)
	if err != nil {
		return "", fmt.Errorf("template does not parse: %w", err)
	}
	if !mentions(t, "messages") && !mentions(t, "response") {
		t.Tree.Root.Nodes = append(t.Tree.Root.Nodes, &parse.ActionNode{NodeType: parse.NodeAction,
			Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand,
				Args: []parse.Node{&parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Response"}}}}}}})
	}
	msgs := in.Messages
	if in.System != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
		msgs = append([]Message{{Role: "system", Content: in.System}}, msgs...)
	}
	system, msgs := collate(msgs)
	var b bytes.Buffer
	if mentions(t, "messages") {
		err := t.Execute(&b, map[string]any{"System": system, "Messages": msgs, "Tools": in.Tools, "Response": "",
			"Think": false, "IsThinkSet": false})
		return b.String(), err
	}
	// an old-style template: one execution per exchange
	system = ""
	var prompt, response string
	flush := func() error {
		err := t.Execute(&b, map[string]any{"System": system, "Prompt": prompt, "Response": response})
		system, prompt, response = "", "", ""
		return err
	}
	for _, m := range msgs {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if err := flush(); err != nil {
					return "", err
				}
			}
			system = m.Content
		case "user":
			if response != "" {
				if err := flush(); err != nil {
					return "", err
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	cut := false
	root := cutAfterResponse(t.Tree.Root.Copy(), &cut).(*parse.ListNode)
	last, err := template.New("").Option("missingkey=zero").Funcs(funcs).AddParseTree("", &parse.Tree{Root: root})
	if err != nil {
		return "", err
	}
	err = last.Execute(&b, map[string]any{"System": system, "Prompt": prompt, "Response": response})
	return b.String(), err
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	out, err := render(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Stdout.WriteString(out)
}
