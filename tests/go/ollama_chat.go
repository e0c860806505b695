// What Ollama does with a chat request for a model made from a Modelfile: which path renders the prompt,
// and what that path is given. Ollama itself cannot be installed on this project's machines; this
// follows its source, ollama/ollama at fb30760 (August 2026, v0.33.0-rc2), function by function, with
// Go's own text/template (the engine Ollama fills a TEMPLATE with):
//
//   - path selection (server/images.go GetModel ~L791-795, shouldPreferChatTemplate ~L295,
//     server/routes.go usesOllamaRenderedChat / shouldUseGoTemplate ~L2372-2385, chatModeForModel ~L2358):
//     a Modelfile TEMPLATE is executed in Go unless the GGUF's tokenizer.chat_template declares more
//     capabilities and no RENDERER/PARSER is set and OLLAMA_GO_TEMPLATE is unset; then the chat goes to
//     llama-server, which renders the GGUF's Jinja template (the TEMPLATE is never executed);
//   - capabilities (images.go chatTemplateCapabilities ~L186, goTemplateCapabilities ~L236 with
//     thinking.InferTags, parserCapabilities, Capabilities with templateCapabilitySelected);
//   - the think default (routes.go ChatHandler ~L2614-2631): a model that declares thinking gets
//     think=true when the request omits it; think=true on one that does not is refused;
//   - tools (images.go CheckCapabilities): tools on a model without the capability are refused;
//   - the Modelfile SYSTEM (routes.go ~L2646): prepended when the chat does not start with a system message;
//   - filterThinkTags (routes.go ~L3122): for a qwen3 (or deepseek-r1) model, thinking is cut from
//     assistant messages before the last user message;
//   - the Go path (server/prompt.go renderPrompt, template/template.go Execute ~L257, collate ~L357):
//     .System, .Messages (collated), .Tools, .Think, .IsThinkSet; an old-style template runs per exchange;
//   - the llama-server path (llm/llama_server.go llamaServerChatRequest ~L2136, llamaServerChatTemplateKwargs
//     ~L2187): the messages as they are, and chat_template_kwargs {"enable_thinking": think} only when think
//     is set;
//   - versions before 0.30.0 (9db4bdbad, "use llama-server exclusively"): the TEMPLATE always renders;
//     PARSER and RENDERER are Modelfile commands since 0.12.0 (47991940d), REQUIRES since 0.14.0
//     (8852220f5); an older Ollama refuses a Modelfile with them (parser/parser.go: "command must be one of").
//
// Not followed: truncation to num_ctx (the checks' conversations are short), images, RENDERER output
// (reported as its own path, which ftkit never writes), harmony (gpt-oss only).
//
// stdin: a JSON array of cases, each
//   {"modelfile": {"template", "system", "parser", "renderer"}, "gguf_chat_template", "model_family",
//    "ollama_version", "env": {"OLLAMA_GO_TEMPLATE": "" | "0" | "1"},
//    "messages": [{"role", "content"}], "think": null | true | false, "tools": [...]}
// stdout: a JSON array of results, each
//   {"path": "go_template" | "llama_server" | "renderer" | "refused", "capabilities": [...], "think": ...,
//    "prompt": (go_template), "llama_server": {"messages", "chat_template_kwargs"} (llama_server), "error"}
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode"
)

type Message struct {
	Role     string `json:"role"`
	Content  string `json:"content"`
	Thinking string `json:"thinking,omitempty"`
}

type Modelfile struct {
	Template string `json:"template"`
	System   string `json:"system"`
	Parser   string `json:"parser"`
	Renderer string `json:"renderer"`
}

type Case struct {
	Modelfile        Modelfile         `json:"modelfile"`
	GGUFChatTemplate string            `json:"gguf_chat_template"`
	ModelFamily      string            `json:"model_family"`
	Version          string            `json:"ollama_version"`
	Env              map[string]string `json:"env"`
	Messages         []Message         `json:"messages"`
	Think            *bool             `json:"think"`
	Tools            []map[string]any  `json:"tools"`
}

type LlamaServerRequest struct {
	Messages           []Message      `json:"messages"`
	ChatTemplateKwargs map[string]any `json:"chat_template_kwargs,omitempty"`
}

type Result struct {
	Path         string              `json:"path"`
	Capabilities []string            `json:"capabilities"`
	Think        *bool               `json:"think"`
	Prompt       *string             `json:"prompt,omitempty"`
	LlamaServer  *LlamaServerRequest `json:"llama_server,omitempty"`
	Error        string              `json:"error,omitempty"`
}

// --- versions ------------------------------------------------------------------------------------

func version(v string) [3]int {
	var out [3]int
	for i, part := range strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3) {
		n, _ := strconv.Atoi(strings.SplitN(part, "-", 2)[0])
		out[i] = n
	}
	return out
}

func atLeast(v, min string) bool {
	a, b := version(v), version(min)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

// --- environment (envconfig/config.go BoolWithDefault ~L177) -----------------------------------------

// goTemplate is envconfig.GoTemplate(defaultValue): unset gives the default; anything unparsable is true.
func goTemplate(env map[string]string, defaultValue bool) bool {
	s := env["OLLAMA_GO_TEMPLATE"]
	if s == "" {
		return defaultValue
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return true
	}
	return b
}

func goTemplateEnvSet(env map[string]string) bool { return goTemplate(env, true) == goTemplate(env, false) }

// --- templates (template/template.go Parse ~L145, Vars ~L171, Identifiers ~L516) ---------------------

var funcs = template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}

var responseNode = &parse.ActionNode{NodeType: parse.NodeAction, Pipe: &parse.PipeNode{NodeType: parse.NodePipe,
	Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Args: []parse.Node{&parse.FieldNode{NodeType: parse.NodeField,
		Ident: []string{"Response"}}}}}}}

func identifiers(n parse.Node) []string {
	var out []string
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				out = append(out, identifiers(c)...)
			}
		}
	case *parse.TemplateNode:
		if n.Pipe != nil {
			out = identifiers(n.Pipe)
		}
	case *parse.ActionNode:
		out = identifiers(n.Pipe)
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

func vars(t *template.Template) map[string]bool {
	set := map[string]bool{}
	for _, tt := range t.Templates() {
		for _, id := range identifiers(tt.Tree.Root) {
			set[strings.ToLower(id)] = true
		}
	}
	return set
}

func parseTemplate(s string) (*template.Template, error) {
	t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(s)
	if err != nil {
		return nil, err
	}
	if v := vars(t); !v["messages"] && !v["response"] {
		t.Tree.Root.Nodes = append(t.Tree.Root.Nodes, responseNode)
	}
	return t, nil
}

// --- capabilities -----------------------------------------------------------------------------------

func appendCap(caps []string, c string) []string {
	for _, have := range caps {
		if have == c {
			return caps
		}
	}
	return append(caps, c)
}

func hasCap(caps []string, c string) bool {
	for _, have := range caps {
		if have == c {
			return true
		}
	}
	return false
}

// images.go chatTemplateHasToolSupport ~L202, chatTemplateHasThinkingSupport ~L223
func chatTemplateCapabilities(caps []string, chatTemplate string) []string {
	if chatTemplate == "" {
		return caps
	}
	if strings.Contains(chatTemplate, "tools") || strings.Contains(chatTemplate, "tool_call") {
		caps = appendCap(caps, "tools")
	}
	thinking := strings.Contains(chatTemplate, "<think>") && strings.Contains(chatTemplate, "</think>")
	splits := strings.Contains(chatTemplate, "content.split('</think>')") || strings.Contains(chatTemplate, `content.split("</think>")`)
	if thinking || (splits && !strings.Contains(chatTemplate, "reasoning_content") && !strings.Contains(chatTemplate, "<SPECIAL_12>")) {
		caps = appendCap(caps, "thinking")
	}
	return caps
}

func chatTemplateHasToolRoundTrip(chatTemplate string) bool {
	if !(strings.Contains(chatTemplate, "tools") || strings.Contains(chatTemplate, "tool_call")) {
		return false
	}
	toolCalls := strings.Contains(chatTemplate, "tool_calls") || strings.Contains(chatTemplate, "assistant_tool_call")
	for _, s := range []string{"tool_response", "tool_results", "role'] == 'tool'", `role'] == "tool"`, `role"] == 'tool'`,
		`role"] == "tool"`, `message.role == 'tool'`, `message.role == "tool"`, "ipython"} {
		if toolCalls && strings.Contains(chatTemplate, s) {
			return true
		}
	}
	return false
}

// inferThinkingTags is thinking.InferTags (thinking/template.go): a .Thinking field inside a range over
// .Messages; the nearest enclosing list's first and last text nodes are the tags.
func inferThinkingTags(t *template.Template) (string, string) {
	var ancestors []parse.Node
	opening, closing := "", ""
	var visit func(n parse.Node)
	visit = func(n parse.Node) {
		if n == nil {
			return
		}
		ancestors = append(ancestors, n)
		defer func() { ancestors = ancestors[:len(ancestors)-1] }()
		switch x := n.(type) {
		case *parse.FieldNode:
			if len(x.Ident) > 0 && x.Ident[0] == "Thinking" {
				var recent *parse.RangeNode
				for i := len(ancestors) - 1; i >= 0; i-- {
					if r, ok := ancestors[i].(*parse.RangeNode); ok {
						recent = r
						break
					}
				}
				if recent == nil || !rangeUses(recent, "Messages") {
					return
				}
				for i := len(ancestors) - 1; i >= 0; i-- {
					if l, ok := ancestors[i].(*parse.ListNode); ok {
						if t, ok := l.Nodes[0].(*parse.TextNode); ok {
							opening = strings.TrimSpace(t.String())
						}
						if t, ok := l.Nodes[len(l.Nodes)-1].(*parse.TextNode); ok {
							closing = strings.TrimSpace(t.String())
						}
						break
					}
				}
			}
		case *parse.ListNode:
			for _, c := range x.Nodes {
				visit(c)
			}
		case *parse.BranchNode:
			visit(x.Pipe)
			if x.List != nil {
				visit(x.List)
			}
			if x.ElseList != nil {
				visit(x.ElseList)
			}
		case *parse.ActionNode:
			visit(x.Pipe)
		case *parse.WithNode:
			visit(&x.BranchNode)
		case *parse.RangeNode:
			visit(&x.BranchNode)
		case *parse.IfNode:
			visit(&x.BranchNode)
		case *parse.TemplateNode:
			if x.Pipe != nil {
				visit(x.Pipe)
			}
		case *parse.PipeNode:
			for _, c := range x.Cmds {
				visit(c)
			}
		case *parse.CommandNode:
			for _, a := range x.Args {
				visit(a)
			}
		}
	}
	visit(t.Tree.Root)
	return opening, closing
}

func rangeUses(r *parse.RangeNode, field string) bool {
	if r.Pipe == nil {
		return false
	}
	for _, c := range r.Pipe.Cmds {
		for _, a := range c.Args {
			if f, ok := a.(*parse.FieldNode); ok {
				for _, id := range f.Ident {
					if id == field {
						return true
					}
				}
			}
		}
	}
	return false
}

func goTemplateCapabilities(t *template.Template) []string {
	if t == nil {
		return nil
	}
	v := vars(t)
	var caps []string
	if v["tools"] {
		caps = appendCap(caps, "tools")
	}
	if v["suffix"] {
		caps = appendCap(caps, "insert")
	}
	if o, c := inferThinkingTags(t); o != "" && c != "" {
		caps = appendCap(caps, "thinking")
	}
	return caps
}

func goTemplateHasToolRoundTrip(t *template.Template, raw string) bool {
	v := vars(t)
	if !v["tools"] || !v["toolcalls"] {
		return false
	}
	return strings.Contains(raw, `eq .Role "tool"`) || strings.Contains(raw, "tool_response") || strings.Contains(raw, "TOOL_RESULTS")
}

func sameCaps(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, c := range a {
		if !hasCap(b, c) {
			return false
		}
	}
	return true
}

func shouldPreferChatTemplate(chatTemplate string, chatCaps []string, goT *template.Template, goRaw string, goCaps []string) bool {
	if len(chatCaps) > len(goCaps) {
		return !goTemplateHasToolRoundTrip(goT, goRaw) || chatTemplateHasToolRoundTrip(chatTemplate)
	}
	if !sameCaps(chatCaps, goCaps) || !hasCap(chatCaps, "tools") || !hasCap(goCaps, "tools") {
		return false
	}
	return chatTemplateHasToolRoundTrip(chatTemplate) && !goTemplateHasToolRoundTrip(goT, goRaw)
}

// parserCapabilities: model/parsers/parsers.go ParserForName and each parser's HasToolSupport /
// HasThinkingSupport, for the parsers whose answers this harness knows.
var parserCaps = map[string][]string{
	"passthrough":       {},
	"qwen3":             {"tools"},
	"qwen3-thinking":    {"tools", "thinking"},
	"qwen3.5":           {"tools", "thinking"},
	"qwen3-coder":       {"tools"},
	"qwen3-vl-instruct": {"tools"},
	"qwen3-vl-thinking": {"tools", "thinking"},
}

// --- the model as Ollama loads it ------------------------------------------------------------------

type model struct {
	c                  Case
	goT                *template.Template
	hasGoTemplate      bool
	preferChatTemplate bool
}

func load(c Case) (*model, error) {
	m := &model{c: c, hasGoTemplate: c.Modelfile.Template != ""}
	if m.hasGoTemplate {
		t, err := parseTemplate(c.Modelfile.Template)
		if err != nil {
			return nil, fmt.Errorf("template does not parse: %w", err)
		}
		m.goT = t
	}
	if !atLeast(c.Version, "0.30.0") {
		return m, nil // before llama-server: the TEMPLATE renders every chat
	}
	chatCaps := chatTemplateCapabilities(nil, c.GGUFChatTemplate)
	goCaps := goTemplateCapabilities(m.goT)
	m.preferChatTemplate = !goTemplateEnvSet(c.Env) && m.hasGoTemplate && c.GGUFChatTemplate != "" &&
		c.Modelfile.Renderer == "" && c.Modelfile.Parser == "" &&
		shouldPreferChatTemplate(c.GGUFChatTemplate, chatCaps, m.goT, c.Modelfile.Template, goCaps)
	return m, nil
}

func (m *model) shouldUseGoTemplate() bool {
	if !m.hasGoTemplate {
		return false
	}
	if !atLeast(m.c.Version, "0.30.0") {
		return true
	}
	if goTemplateEnvSet(m.c.Env) {
		return goTemplate(m.c.Env, true)
	}
	return !m.preferChatTemplate && goTemplate(m.c.Env, true)
}

func (m *model) usesOllamaRenderedChat() bool {
	return m.c.Modelfile.Renderer != "" || m.c.Modelfile.Parser != "" || m.shouldUseGoTemplate()
}

// capabilities is Model.Capabilities with templateCapabilitySelected (images.go ~L117-140).
func (m *model) capabilities() []string {
	var caps []string
	if atLeast(m.c.Version, "0.30.0") && !m.usesOllamaRenderedChat() {
		caps = chatTemplateCapabilities(caps, m.c.GGUFChatTemplate)
	}
	caps = appendCap(caps, "completion")
	if !(m.hasGoTemplate && !m.shouldUseGoTemplate()) {
		for _, c := range goTemplateCapabilities(m.goT) {
			caps = appendCap(caps, c)
		}
	}
	for _, c := range parserCaps[m.c.Modelfile.Parser] {
		caps = appendCap(caps, c)
	}
	return caps
}

// --- the chat -----------------------------------------------------------------------------------------

// withoutThinking is one call of thinking.Parser.AddContent (thinking/parser.go) with <think></think>:
// what it returns as content.
func withoutThinking(content string) string {
	trimmed := strings.TrimLeftFunc(content, unicode.IsSpace)
	const open, close = "<think>", "</think>"
	if strings.HasPrefix(trimmed, open) {
		after := strings.TrimLeftFunc(strings.Join(strings.Split(trimmed, open)[1:], open), unicode.IsSpace)
		if !strings.Contains(after, close) {
			return ""
		}
		return strings.TrimLeftFunc(strings.Join(strings.Split(after, close)[1:], close), unicode.IsSpace)
	}
	if strings.HasPrefix(open, trimmed) {
		return "" // whitespace, or a partial opening tag: held back
	}
	return content
}

func filterThinkTags(msgs []Message, family string) []Message {
	if family != "qwen3" && family != "deepseek-r1" {
		return msgs
	}
	last := -1
	for i, msg := range msgs {
		if msg.Role == "user" {
			last = i
		}
	}
	for i := range msgs {
		if msgs[i].Role == "assistant" && i < last {
			msgs[i].Content = withoutThinking(msgs[i].Content)
		}
	}
	return msgs
}

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

// execute is template.Template.Execute (template/template.go ~L257).
func execute(t *template.Template, msgs []Message, tools []map[string]any, think *bool) (string, error) {
	thinkValue := think != nil && *think
	system, msgs := collate(msgs)
	var b bytes.Buffer
	if vars(t)["messages"] {
		err := t.Execute(&b, map[string]any{"System": system, "Messages": msgs, "Tools": tools, "Response": "",
			"Think": thinkValue, "ThinkLevel": "", "IsThinkSet": think != nil})
		return b.String(), err
	}
	// an old-style template: one execution per exchange
	system = ""
	var prompt, response string
	flush := func() error {
		err := t.Execute(&b, map[string]any{"System": system, "Prompt": prompt, "Response": response,
			"Think": thinkValue, "ThinkLevel": "", "IsThinkSet": think != nil})
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
	err = last.Execute(&b, map[string]any{"System": system, "Prompt": prompt, "Response": response,
		"Think": thinkValue, "ThinkLevel": "", "IsThinkSet": think != nil})
	return b.String(), err
}

func unknownCommand(c Case) string {
	need := map[string]string{"parser": "0.12.0", "renderer": "0.12.0"}
	for name, value := range map[string]string{"parser": c.Modelfile.Parser, "renderer": c.Modelfile.Renderer} {
		if value != "" && !atLeast(c.Version, need[name]) {
			return fmt.Sprintf("Ollama %s does not know the %s command (since %s): command must be one of ...",
				c.Version, strings.ToUpper(name), need[name])
		}
	}
	return ""
}

func route(c Case) Result {
	res := Result{Capabilities: []string{}}
	if msg := unknownCommand(c); msg != "" {
		return Result{Path: "refused", Capabilities: []string{}, Error: msg}
	}
	m, err := load(c)
	if err != nil {
		return Result{Path: "refused", Capabilities: []string{}, Error: err.Error()}
	}
	caps := m.capabilities()
	sort.Strings(caps)
	res.Capabilities = caps
	think := c.Think
	if hasCap(caps, "thinking") {
		if think == nil {
			t := true
			think = &t
		}
	} else if think != nil && *think {
		res.Path, res.Error = "refused", "\"model\" does not support thinking"
		return res
	}
	res.Think = think
	if len(c.Tools) > 0 && !hasCap(caps, "tools") {
		res.Path, res.Error = "refused", "\"model\" does not support tools"
		return res
	}
	msgs := append([]Message{}, c.Messages...)
	if len(c.Messages) > 0 && c.Messages[0].Role != "system" && c.Modelfile.System != "" {
		msgs = append([]Message{{Role: "system", Content: c.Modelfile.System}}, msgs...)
	}
	msgs = filterThinkTags(msgs, c.ModelFamily)
	if !m.usesOllamaRenderedChat() && atLeast(c.Version, "0.30.0") {
		res.Path = "llama_server"
		req := &LlamaServerRequest{Messages: msgs}
		if think != nil {
			req.ChatTemplateKwargs = map[string]any{"enable_thinking": *think}
		}
		res.LlamaServer = req
		return res
	}
	if c.Modelfile.Renderer != "" {
		res.Path = "renderer"
		return res
	}
	if m.goT == nil {
		res.Path, res.Error = "refused", "no TEMPLATE to render with"
		return res
	}
	prompt, err := execute(m.goT, msgs, c.Tools, think)
	if err != nil {
		res.Path, res.Error = "refused", err.Error()
		return res
	}
	res.Path, res.Prompt = "go_template", &prompt
	return res
}

func main() {
	var cases []Case
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	results := make([]Result, len(cases))
	for i, c := range cases {
		results[i] = route(c)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
}
