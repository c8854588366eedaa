// Command go-peer is a controller-runtime (Go) operator doing this operator's core job, for the comparison in the
// scale benchmark, next to the kopf (Python) peer in ../kopf_operator.py, whose behaviour it mirrors.
//
// It is written the way a Go team would write it with controller-runtime, and no more: one controller for
// CertificatePush, watched as unstructured.Unstructured (no codegen, no generated clients), reading the object from
// the manager's cache, pushing once per generation to SCM, and writing the outcome into the status subresource as
// Ready=True/Pushed with observedGeneration, the same fields the kopf peer and the Rust operator write. Everything
// else is controller-runtime's default: its workqueue, its client (protobuf for built-in types, JSON for the custom
// resource), client-go's HTTP/2 transport to the API server.
//
// Build with build.sh next to this file; run as
//
//	KUBECONFIG=... go-peer --namespace NS --scm-endpoint http://127.0.0.1:18080
//
// It prints `health: HOST:PORT` on stderr once its readiness endpoint listens; /readyz answers 200 once the
// CertificatePush informer has synced.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// The watched kind. As unstructured.Unstructured it needs no Go types and no scheme registration: the REST mapper
// finds the plural (certificatepushes) through discovery.
var certificatePushGVK = schema.GroupVersionKind{
	Group:   "scm.certpush.dev",
	Version: "v1alpha1",
	Kind:    "CertificatePush",
}

// A failed attempt that may succeed later (SCM 429 or 5xx, a network error, an unreadable Secret) is retried after
// this long, as the kopf peer's TemporaryError(delay=5).
const retryDelay = 5 * time.Second

func newCertificatePush() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(certificatePushGVK)
	return u
}

func main() {
	var (
		namespace   string
		scmEndpoint string
		concurrency int
		metricsAddr string
		healthAddr  string
	)
	flag.StringVar(&namespace, "namespace", "", "watch only this namespace (empty: all namespaces)")
	flag.StringVar(&scmEndpoint, "scm-endpoint", os.Getenv("SCM_ENDPOINT"), "SCM base URL (default: $SCM_ENDPOINT)")
	flag.IntVar(&concurrency, "concurrency", 64, "MaxConcurrentReconciles of the controller")
	flag.StringVar(&metricsAddr, "metrics-addr", "0", `bind address of the Prometheus metrics server ("0": off)`)
	flag.StringVar(&healthAddr, "health-addr", "127.0.0.1:0", "bind address of /readyz (port 0: any free port)")
	flag.Parse()

	// Info level, JSON lines on stderr: errors and controller-runtime's start-up lines only. The reconciler logs
	// nothing on success, so log output does not weigh on the CPU comparison.
	ctrl.SetLogger(zap.New(zap.UseDevMode(false)))
	log := ctrl.Log.WithName("go-peer")

	if scmEndpoint == "" {
		fmt.Fprintln(os.Stderr, "go-peer: --scm-endpoint (or SCM_ENDPOINT) is required")
		os.Exit(2)
	}

	// KUBECONFIG (or in-cluster config), the standard way.
	cfg := ctrl.GetConfigOrDie()
	// Client-side throttling off: QPS < 0 disables client-go's token bucket, so Burst does not matter. GetConfig
	// already does this when the kubeconfig sets no QPS (relying on the API server's priority and fairness); set here
	// explicitly so the benchmark measures the operator, not a 5-QPS default.
	cfg.QPS = -1

	cacheOptions := cache.Options{}
	if namespace != "" {
		// Restrict the informers (list and watch) to one namespace, as the kopf peer's --namespace does.
		cacheOptions.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Cache: cacheOptions,
		// controller-runtime's client reads unstructured objects live from the API server unless told otherwise;
		// a Go operator reads its own kind from the cache, so turn that on for Unstructured.
		Client: client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		// One replica in the benchmark: no leader election (no Lease traffic).
		LeaderElection: false,
		Metrics:        metricsserver.Options{BindAddress: metricsAddr},
		// Off: the manager's probe server cannot tell which port it bound, so /readyz is served below instead.
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		log.Error(err, "cannot create the manager")
		os.Exit(1)
	}

	r := &reconciler{
		client: mgr.GetClient(),
		// Secrets are read live from the API server, not from the cache: the Rust operator does not cache Secrets
		// either (and caching every Secret of the namespace would cost memory the others do not spend).
		apiReader: mgr.GetAPIReader(),
		// controller-runtime 0.25's standard recorder, GetEventRecorder, posts events.k8s.io/v1 Events (the deprecated
		// GetEventRecorderFor posts core/v1 ones). The name becomes reportingController.
		recorder: mgr.GetEventRecorder("certpush-go-peer"),
		scm:      strings.TrimRight(scmEndpoint, "/"),
		http:     newSCMClient(),
	}

	err = ctrl.NewControllerManagedBy(mgr).
		Named("certificatepush").
		// Only generation changes (and the initial list) start a reconcile, not our own status patches: the kopf peer
		// handles creation and resume only, and a status write would otherwise bring every object back once more.
		For(newCertificatePush(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
	if err != nil {
		log.Error(err, "cannot create the controller")
		os.Exit(1)
	}

	ctx := ctrl.SetupSignalHandler()

	// Readiness: bound here rather than by the manager, so the actual port can be printed for a harness.
	listener, err := net.Listen("tcp", healthAddr)
	if err != nil {
		log.Error(err, "cannot listen", "address", healthAddr)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "health: %s\n", listener.Addr())
	health := &http.Server{Handler: readyzHandler(mgr.GetCache()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := health.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "health server failed")
		}
	}()

	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager failed")
		os.Exit(1)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = health.Shutdown(shutdown)
}

// readyzHandler answers /readyz with 200 once the CertificatePush informer has listed everything (the controller has
// then been handed every object), 503 before; /healthz always 200.
func readyzHandler(c cache.Cache) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, req *http.Request) {
		// BlockUntilSynced(false): look, do not wait. Before the manager starts the cache this only registers the
		// informer, which the controller asks for anyway.
		informer, err := c.GetInformer(req.Context(), newCertificatePush(), cache.BlockUntilSynced(false))
		if err != nil || !informer.HasSynced() {
			http.Error(w, "cache not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	return mux
}

// newSCMClient returns the one HTTP client all reconciles share. Go's default keeps only 2 idle connections per
// host, so 64 concurrent pushes to the one SCM host would open and close connections all the time; keep up to 256.
func newSCMClient() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 256
	transport.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

type reconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  recorder.EventRecorder
	scm       string
	http      *http.Client
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := newCertificatePush()
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		// Deleted since it was queued: nothing to do (SCM has no un-push).
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	generation := obj.GetGeneration()
	if pushed(obj, generation) {
		return ctrl.Result{}, nil // resumed after a restart: this generation is pushed already
	}

	certificateID, _, _ := unstructured.NestedString(obj.Object, "spec", "certificateId")
	targetService, _, _ := unstructured.NestedString(obj.Object, "spec", "targetService")
	targetProject, _, _ := unstructured.NestedString(obj.Object, "spec", "targetProject")
	secretName, _, _ := unstructured.NestedString(obj.Object, "spec", "credentialsRef", "name")
	tokenKey, _, _ := unstructured.NestedString(obj.Object, "spec", "credentialsRef", "tokenKey")
	if tokenKey == "" {
		tokenKey = "token"
	}

	// The credentials, live from the API server (see apiReader above).
	var secret corev1.Secret
	if err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: secretName}, &secret); err != nil {
		message := "Secret: " + err.Error()
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			message = fmt.Sprintf("Secret: HTTP %d", status.Status().Code) // as the kopf peer words it
		}
		return r.retry(ctx, obj, map[string]any{}, generation, "CredentialsUnavailable", message)
	}
	token, ok := secret.Data[tokenKey]
	if !ok {
		return r.retry(ctx, obj, map[string]any{}, generation, "CredentialsUnavailable",
			fmt.Sprintf("Secret: no key %q", tokenKey))
	}

	status := map[string]any{}
	attempted := now()
	code, requestID, text, err := r.push(ctx, string(token), certificateID, targetService, targetProject)
	if err != nil {
		// No answer at all (connection refused, timeout): temporary.
		return r.retry(ctx, obj, status, generation, "PushFailed", "SCM: "+err.Error())
	}
	status["httpStatus"] = code
	status["lastAttemptTime"] = attempted
	status["requestId"] = requestID // nil (JSON null) removes a previous one, as kopf's None does
	if code != http.StatusNoContent {
		message := fmt.Sprintf("SCM: HTTP %d: %s", code, truncate(text, 200))
		if code == http.StatusTooManyRequests || code >= 500 {
			return r.retry(ctx, obj, status, generation, "PushFailed", message)
		}
		// Any other 4xx: retrying the same request will not help; wait for a spec change (a new generation).
		setReady(status, generation, "False", "PushFailed", message)
		return ctrl.Result{}, r.patchStatus(ctx, obj, status)
	}

	status["lastPushTime"] = attempted
	status["pushedGeneration"] = generation
	message := fmt.Sprintf("Pushed %s to %s in %s", certificateID, targetService, targetProject)
	setReady(status, generation, "True", "Pushed", message)
	if err := r.patchStatus(ctx, obj, status); err != nil {
		return ctrl.Result{}, err
	}
	// One Event per push, as the Rust operator and the kopf peer post. events.k8s.io/v1 requires an action.
	r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "Pushed", "Push", "%s", message)
	return ctrl.Result{}, nil
}

// retry records Ready=False with reason and message, and asks for the object again after retryDelay. The requeue is
// returned as a Result, not an error, so controller-runtime neither logs it nor applies its exponential backoff: a
// fixed 5 s, as the kopf peer's TemporaryError(delay=5).
func (r *reconciler) retry(ctx context.Context, obj *unstructured.Unstructured, status map[string]any,
	generation int64, reason, message string) (ctrl.Result, error) {
	setReady(status, generation, "False", reason, message)
	if err := r.patchStatus(ctx, obj, status); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: retryDelay}, nil
}

// push POSTs the certificate push and returns SCM's status code, X-Request-Id (nil when absent) and the body.
func (r *reconciler) push(ctx context.Context, token, certificateID, targetService, targetProject string) (
	int, any, string, error) {
	body, err := json.Marshal(map[string]string{"target_service": targetService, "target_project": targetProject})
	if err != nil {
		return 0, nil, "", err
	}
	url := fmt.Sprintf("%s/v3/scm/certificates/%s/push", r.scm, certificateID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", token)
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	// Read the body to its end (bounded) so the connection goes back to the idle pool for the next push.
	text, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, "", err
	}
	var requestID any
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		requestID = id
	}
	return resp.StatusCode, requestID, string(text), nil
}

// patchStatus writes status with a JSON merge patch of the status subresource: only the fields given change, as
// kopf's patch.status does. No resourceVersion precondition: the fields are this controller's alone.
func (r *reconciler) patchStatus(ctx context.Context, obj *unstructured.Unstructured, status map[string]any) error {
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	err = r.client.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
	return client.IgnoreNotFound(err) // deleted meanwhile
}

// pushed tells whether the status shows a successful push of this generation: Ready=True and pushedGeneration equal
// to metadata.generation (the kopf peer's pushed()).
func pushed(obj *unstructured.Unstructured, generation int64) bool {
	conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conditions {
		condition, ok := c.(map[string]any)
		if !ok || condition["type"] != "Ready" {
			continue
		}
		if condition["status"] != "True" {
			return false
		}
		// Integers in unstructured objects decode as int64.
		pushedGeneration, found, err := unstructured.NestedInt64(obj.Object, "status", "pushedGeneration")
		return err == nil && found && pushedGeneration == generation
	}
	return false
}

// setReady puts observedGeneration and the one Ready condition into status, exactly as the kopf peer's ready().
// lastTransitionTime is the time of this write, as there.
func setReady(status map[string]any, generation int64, value, reason, message string) {
	status["observedGeneration"] = generation
	status["conditions"] = []any{map[string]any{
		"type":               "Ready",
		"status":             value,
		"reason":             reason,
		"message":            message,
		"lastTransitionTime": now(),
		"observedGeneration": generation,
	}}
}

// now is the current UTC time in whole seconds, RFC 3339 with Z, as the kopf peer writes it.
func now() string {
	return time.Now().UTC().Format("2006-01-02T15:04:05Z")
}

// truncate keeps the first n characters (not bytes) of s, as Python's s[:n].
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
