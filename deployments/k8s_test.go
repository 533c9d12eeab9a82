package deployments

// The Kubernetes manifests checked against Kubernetes' own types: every
// document of k8s/*.yaml decodes strictly (an unknown or misspelt field, a
// duplicate key or a value of the wrong type is an error, as `kubectl apply
// --validate=strict` would report) into the k8s.io/api type of its kind, and
// the kustomization renders with kustomize's own library (krusty, what
// `kubectl kustomize` runs) into objects that decode strictly too. What
// only a cluster can tell (admission, the HPA on real metrics, PDBs under a
// drain) is listed in README.md.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// k8sKinds are the kinds the manifests may hold, each with its type.
var k8sKinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// k8sDecode decodes every document of a manifest strictly into its type.
func k8sDecode(name string, b []byte) (objs []any, problems []string) {
	r := utilyaml.NewYAMLReader(bufioReader(b))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return objs, append(problems, fmt.Sprintf("%s: document %d: %v", name, i, err))
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			problems = append(problems, fmt.Sprintf("%s: document %d: %v", name, i, err))
			continue
		}
		mk, ok := k8sKinds[head.APIVersion+"/"+head.Kind]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: document %d: %s %s is no kind these manifests use (add it to k8sKinds)", name, i, head.APIVersion, head.Kind))
			continue
		}
		obj := mk()
		if err := strictUnmarshal(doc, obj); err != nil {
			problems = append(problems, fmt.Sprintf("%s: document %d (%s): %v", name, i, head.Kind, err))
			continue
		}
		objs = append(objs, obj)
	}
	return objs, problems
}

// k8sCheck decodes every manifest of dir (a copy of k8s/ in the mistake
// cases) and renders its kustomization; it returns the problems.
func k8sCheck(t *testing.T, dir string) []string {
	t.Helper()
	var problems []string
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("k8s manifests in %s: %v (found %d)", dir, err, len(files))
	}
	listed := 0
	var k types.Kustomization
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			if err := strictUnmarshal(b, &k); err != nil {
				problems = append(problems, fmt.Sprintf("kustomization.yaml: %v", err))
			}
			continue
		}
		objs, p := k8sDecode(filepath.Base(f), b)
		problems = append(problems, p...)
		if !strings.Contains(filepath.Base(f), ".template.") {
			listed += len(objs)
		}
	}
	if len(problems) > 0 {
		return problems
	}

	// Render as `kubectl kustomize` would.
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return append(problems, fmt.Sprintf("kustomize build: %v", err))
	}
	out, err := res.AsYaml()
	if err != nil {
		return append(problems, fmt.Sprintf("kustomize build: %v", err))
	}
	rendered, p := k8sDecode("kustomize build", out)
	problems = append(problems, p...)
	if len(rendered) != listed {
		problems = append(problems, fmt.Sprintf("kustomize build: %d objects, the manifests it lists hold %d", len(rendered), listed))
	}
	images := 0
	for _, o := range rendered {
		switch o := o.(type) {
		case *corev1.Namespace:
			if o.Name != k.Namespace {
				problems = append(problems, fmt.Sprintf("kustomize build: Namespace %s, want %s", o.Name, k.Namespace))
			}
		case *appsv1.Deployment:
			if o.Namespace != k.Namespace {
				problems = append(problems, fmt.Sprintf("kustomize build: Deployment %s in namespace %q, want %q", o.Name, o.Namespace, k.Namespace))
			}
			for _, c := range o.Spec.Template.Spec.Containers {
				// Every image of ours is one the kustomization sets.
				repo, _, _ := strings.Cut(c.Image, "@")
				if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
					repo = repo[:i]
				}
				i := slices.IndexFunc(k.Images, func(im types.Image) bool { return im.Name == repo })
				if i < 0 {
					problems = append(problems, fmt.Sprintf("kustomize build: Deployment %s image %s: not set by kustomization.yaml images:", o.Name, c.Image))
					continue
				}
				want := repo + ":" + k.Images[i].NewTag
				if k.Images[i].Digest != "" {
					want = repo + "@" + k.Images[i].Digest
				}
				if c.Image != want {
					problems = append(problems, fmt.Sprintf("kustomize build: Deployment %s image %s, want %s", o.Name, c.Image, want))
				}
				images++
			}
		}
	}
	if images < 2 {
		problems = append(problems, fmt.Sprintf("kustomize build: %d containers run images of ours, want the ingress and the worker", images))
	}
	return problems
}

func TestKubernetesManifests(t *testing.T) {
	for _, p := range k8sCheck(t, filepath.Join(deploymentsDir, "k8s")) {
		t.Error(p)
	}
}

// TestKubernetesManifestsCatchMistakes: each mistake, made in a copy of
// k8s/, is reported by the strict decoding or the rendering.
func TestKubernetesManifestsCatchMistakes(t *testing.T) {
	cases := []struct {
		name, file, old, new string
		want                 string // a problem must contain this
	}{
		{"misspelt field", "ingress-deployment.yaml", "imagePullPolicy: IfNotPresent", "imagePulPolicy: IfNotPresent", "imagePulPolicy"},
		{"field at the wrong level", "worker-deployment.yaml", "      serviceAccountName: pinreset-worker\n", "      serviceAccountName: pinreset-worker\n      replicas: 2\n", "replicas"},
		{"wrong type", "pdb.yaml", "  name: pinreset-worker\n", "  name: [pinreset-worker]\n", "pdb.yaml"},
		{"bad quantity", "ingress-deployment.yaml", "memory: 64Mi", "memory: 64 MiB", "quantities must match"},
		{"unknown kind", "namespace.yaml", "kind: Namespace", "kind: Namespac", "Namespac"},
		{"secret template field", "secret.template.yaml", "stringData:\n  seal-keys:", "stringdata:\n  seal-keys:", "stringdata"},
		{"kustomization field", "kustomization.yaml", "resources:", "resource:", "resource"},
		{"kustomization resource missing", "kustomization.yaml", "  - pdb.yaml\n", "  - pdb.yaml\n  - hpa.yaml\n", "hpa.yaml"},
		{"image not set by the kustomization", "kustomization.yaml", "  - name: registry.example.com/kmwallet/pinreset-worker\n", "  - name: registry.example.com/kmwallet/pinreset-wroker\n", "not set by kustomization.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(depCopy(t, deploymentsDir), "k8s")
			p := filepath.Join(dir, tc.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), tc.old); n != 1 {
				t.Fatalf("%s: %q occurs %d times, want once (update this test case to the file)", tc.file, tc.old, n)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(b), tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			problems := k8sCheck(t, dir)
			for _, pr := range problems {
				if strings.Contains(pr, tc.want) {
					t.Logf("caught: %s", pr)
					return
				}
			}
			t.Errorf("no problem mentions %q; got %d:\n%s", tc.want, len(problems), strings.Join(problems, "\n"))
		})
	}
}

// strictUnmarshal decodes a YAML document as the API server's strict field
// validation does: duplicate keys, unknown fields and field names in the
// wrong case are errors (encoding/json alone would accept "stringdata" for
// "stringData").
func strictUnmarshal(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// stripComments drops the comment lines of a YAML document (a document of
// comments only is no object).
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
