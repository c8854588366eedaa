// Command kstatus prints the verdict of kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), the library
// Flux's health checks use, on each object of a JSON array read from stdin: a JSON array of
// {"status", "message"} in the same order.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fail(2, "reading a JSON array of objects from stdin: %v", err)
	}
	verdicts := make([]verdict, 0, len(objects))
	for i, raw := range objects {
		// Unstructured's own decoding keeps integers as int64, as the API machinery does.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			fail(2, "object %d: %v", i, err)
		}
		result, err := status.Compute(obj)
		if err != nil {
			fail(1, "object %d: %v", i, err)
		}
		verdicts = append(verdicts, verdict{Status: result.Status.String(), Message: result.Message})
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdicts); err != nil {
		fail(1, "writing the result: %v", err)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(code)
}
