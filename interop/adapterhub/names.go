package adapterhub

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/houlsby/adapters/model"
)

// AdapterHub's tensor names for a BERT model saved from BertAdapterModel
// (the "bert." prefix; a BertModel with adapters.init saves without it, and
// both load either way).

// basePrefix is BertAdapterModel's base_model_prefix.
const basePrefix = "bert."

// adapterHubName is the AdapterHub name of our adapter tensor at layer l
// (after the feed-forward block when ffn), for the suffix model.AdapterDownWeight etc.
func adapterHubName(name string, l int, ffn bool, suffix string) string {
	site := "attention.output"
	if ffn {
		site = "output"
	}
	proj := map[string]string{
		model.AdapterDownWeight: "adapter_down.0.weight", model.AdapterDownBias: "adapter_down.0.bias",
		model.AdapterUpWeight: "adapter_up.weight", model.AdapterUpBias: "adapter_up.bias",
	}[suffix]
	return basePrefix + "encoder.layer." + strconv.Itoa(l) + "." + site + ".adapters." + name + "." + proj
}

var adapterRE = regexp.MustCompile(`^(?:bert\.)?encoder\.layer\.(\d+)\.(attention\.output|output)\.adapters\.([A-Za-z0-9_-]+)\.(adapter_down\.0\.weight|adapter_down\.0\.bias|adapter_up\.weight|adapter_up\.bias)$`)

// ourAdapterName maps an AdapterHub adapter tensor name of the adapter
// called name to ours; numLayers bounds the layer.
func ourAdapterName(key, name string, numLayers int) (string, error) {
	m := adapterRE.FindStringSubmatch(key)
	if m == nil {
		return "", fmt.Errorf("tensor %s is not a bottleneck adapter tensor of a BERT layer", key)
	}
	if m[3] != name {
		return "", fmt.Errorf("tensor %s belongs to adapter %q, the config names %q", key, m[3], name)
	}
	l, err := strconv.Atoi(m[1])
	if err != nil || l >= numLayers {
		return "", fmt.Errorf("tensor %s: layer %s out of range [0, %d)", key, m[1], numLayers)
	}
	suffix := map[string]string{
		"adapter_down.0.weight": model.AdapterDownWeight, "adapter_down.0.bias": model.AdapterDownBias,
		"adapter_up.weight": model.AdapterUpWeight, "adapter_up.bias": model.AdapterUpBias,
	}[m[4]]
	return model.AdapterPrefix(l, m[2] == "output") + suffix, nil
}

// headHubName is the AdapterHub name of module index i of head name.
func headHubName(name string, i int, param string) string {
	return "heads." + name + "." + strconv.Itoa(i) + "." + param
}
