// Renders an Ollama TEMPLATE with Go's own text/template, the engine Ollama uses.
// stdin: {"template": "...", "system": "...", "messages": [{"role": "...", "content": "..."}]}
// stdout: the rendered prompt, exactly.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Data struct {
	System   string    `json:"system"`
	Messages []Message `json:"messages"`
}

func main() {
	var in struct {
		Template string `json:"template"`
		Data
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	t, err := template.New("modelfile").Parse(in.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template does not parse:", err)
		os.Exit(3)
	}
	if err := t.Execute(os.Stdout, in.Data); err != nil {
		fmt.Fprintln(os.Stderr, "template does not execute:", err)
		os.Exit(4)
	}
}
