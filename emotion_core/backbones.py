"""The backbones as data: how each is built, where its head goes, its layer groups for
staged unfreezing, and where Grad-CAM looks (the split into a trunk run once and a tail
run per target class).

| arch          | torchvision weights            | head slot (linear head)  | Grad-CAM layer                       | top blocks (paper schedule)         |
| ------------- | ------------------------------ | ------------------------ | ------------------------------------ | ----------------------------------- |
| vgg19, vgg16  | VGG19/VGG16_Weights.IMAGENET1K_V1 | classifier.6          | ReLU after the last conv (conv5_4/conv5_3) | conv5_4, conv5_3, ...         |
| resnet50      | ResNet50_Weights.IMAGENET1K_V2 | fc                       | layer4 (output of its last block)    | layer4.2, layer4.1, layer4.0, layer3.5 |
| convnext_tiny | ConvNeXt_Tiny_Weights.IMAGENET1K_V1 | classifier.2        | features (output of the last stage)  | features.7.2, .7.1, .7.0, features.6 |
| vit_b_16      | ViT_B_16_Weights.IMAGENET1K_V1 | heads.head               | encoder.layers[-1].ln_1, patch tokens as a grid | encoder.layers.11, .10, .9, .8 |

Layer group names are torchvision's module names (what `model.named_modules()` prints),
except VGG's paper-style conv names (conv5_4) and ViT's blocks, `encoder.layers.11` for
torchvision's `encoder.layers.encoder_layer_11`. ConvNeXt also answers to timm's stage names,
`stages.0`..`stages.3` (features.1; features.2-3; features.4-5; features.6-7, downsampling
included as in timm). Every backbone has `head`, `features` (everything but the head) and
`all`. ViT's `head` includes the final LayerNorm `encoder.ln`, as ConvNeXt's classifier
includes its LayerNorm.

Why ViT's Grad-CAM looks at the last block's first LayerNorm (as pytorch-grad-cam's ViT
recipe does) and not at the last block's output: only the class token reaches the head, so
the patch tokens of the last block's output have zero gradient. The patch tokens of
`ln_1`, reshaped to (N, C, h, w) with the class token dropped, reach the class token through
the last block's attention.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torchvision.models import (ConvNeXt, ConvNeXt_Tiny_Weights, ResNet, ResNet50_Weights, VGG, VGG16_Weights,
                                VGG19_Weights, ViT_B_16_Weights, VisionTransformer, convnext_tiny, resnet50,
                                vit_b_16)
from torchvision.models._api import WeightsEnum
from torchvision.models.convnext import CNBlock
from torchvision.models.vgg import cfgs as VGG_CONFIGS
from torchvision.models.vgg import make_layers

# A small stack of the same torchvision VGG class, for tests and the CPU demo.
SMALL_FEATURES: list[int | str] = [16, "M", 32, "M", 64, "M", 96, "M"]


@dataclass(frozen=True)
class Backbone:
    name: str                      # the --arch value
    title: str                     # for messages: "ResNet-50"
    weights: WeightsEnum | None    # ImageNet weights (None: none exist, vgg_small)
    build: Callable[[int, bool], nn.Module]  # (input_size, batch_norm) -> torchvision model, ImageNet head
    linear_slot: str               # the module a linear (or, except VGG, the paper's) head replaces


def _vgg(config: str) -> Callable[[int, bool], nn.Module]:
    return lambda size, batch_norm: VGG(make_layers(VGG_CONFIGS[config]), num_classes=1000, init_weights=True)


def _vgg_small(size: int, batch_norm: bool) -> nn.Module:
    return VGG(make_layers(SMALL_FEATURES, batch_norm=batch_norm), num_classes=8, init_weights=True)


def _vit_b_16(size: int, batch_norm: bool) -> nn.Module:
    if size % 16:
        raise ValueError(f"vit_b_16 needs an input size divisible by its 16-pixel patches, not {size}")
    return vit_b_16(weights=None, image_size=size)


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("vgg19", "VGG19", VGG19_Weights.IMAGENET1K_V1, _vgg("E"), "classifier.6"),
    Backbone("vgg16", "VGG16", VGG16_Weights.IMAGENET1K_V1, _vgg("D"), "classifier.6"),
    Backbone("resnet50", "ResNet-50", ResNet50_Weights.IMAGENET1K_V2, lambda size, bn: resnet50(weights=None), "fc"),
    Backbone("convnext_tiny", "ConvNeXt-Tiny", ConvNeXt_Tiny_Weights.IMAGENET1K_V1,
             lambda size, bn: convnext_tiny(weights=None), "classifier.2"),
    Backbone("vit_b_16", "ViT-B/16", ViT_B_16_Weights.IMAGENET1K_V1, _vit_b_16, "heads.head"),
    Backbone("vgg_small", "small VGG", None, _vgg_small, "classifier.6"),
)}


def get_backbone(arch: str) -> Backbone:
    if arch not in BACKBONES:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(BACKBONES)}")
    return BACKBONES[arch]


def set_module(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, name = dotted.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def head_in_features(model: nn.Module, slot: str) -> int:
    return model.get_submodule(slot).in_features


def num_outputs(model: nn.Module) -> int:
    """Classes the model predicts: the last Linear's outputs (every backbone ends in one)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


# ---- layer groups (as data) -------------------------------------------------------------

def vgg_conv_names(model: VGG) -> dict[str, list[str]]:
    """Paper-style names for each conv layer ('conv5_4') -> module prefixes it owns.

    A conv's batch-norm (small VGG) belongs to it. Blocks are counted by max-pools.
    """
    names: dict[str, list[str]] = {}
    block, index, current = 1, 0, None
    for position, module in enumerate(model.features):
        if isinstance(module, nn.Conv2d):
            index += 1
            current = f"conv{block}_{index}"
            names[current] = [f"features.{position}"]
        elif isinstance(module, nn.BatchNorm2d) and current:
            names[current].append(f"features.{position}")
        elif isinstance(module, nn.MaxPool2d):
            block, index, current = block + 1, 0, None
    return names


RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


def _resnet_blocks(model: ResNet) -> dict[str, list[str]]:
    """'layer4' and its bottleneck blocks 'layer4.0', 'layer4.1', ..., bottom up."""
    groups: dict[str, list[str]] = {"stem": ["conv1", "bn1"]}
    for stage in RESNET_STAGES:
        groups[stage] = [stage]
        groups.update({f"{stage}.{i}": [f"{stage}.{i}"] for i in range(len(getattr(model, stage)))})
    return groups


def _convnext_blocks(model: ConvNeXt) -> dict[str, list[str]]:
    """Each child of `features` ('features.7': a stage, 'features.6': a downsampling) and
    each block of a stage ('features.7.2'), bottom up; timm's 'stages.N' as aliases."""
    groups: dict[str, list[str]] = {}
    stage_positions = []
    for position, child in enumerate(model.features):
        groups[f"features.{position}"] = [f"features.{position}"]
        if _is_convnext_stage(child):
            stage_positions.append(position)
            groups.update({f"features.{position}.{i}": [f"features.{position}.{i}"] for i in range(len(child))})
    for number, position in enumerate(stage_positions):
        # timm's stage N holds the downsampling in front of it (the first stage has none: the stem)
        owned = [position] if number == 0 else [position - 1, position]
        groups[f"stages.{number}"] = [f"features.{p}" for p in owned]
    return groups


def _is_convnext_stage(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and len(module) > 0 and all(isinstance(m, CNBlock) for m in module)


def _vit_blocks(model: VisionTransformer) -> dict[str, list[str]]:
    """'embeddings' and 'encoder.layers.N' for torchvision's encoder.layers.encoder_layer_N."""
    groups = {"embeddings": ["conv_proj", "class_token", "encoder.pos_embedding"]}
    groups.update({f"encoder.layers.{i}": [f"encoder.layers.{name}"]
                   for i, (name, _) in enumerate(model.encoder.layers.named_children())})
    return groups


def layer_groups(model: nn.Module) -> dict[str, list[str]]:
    """Named parameter groups for freezing -> module prefixes ('' = everything).
    'head', 'features' and 'all' first, then the backbone's own units bottom up."""
    if isinstance(model, VGG):
        return {"head": ["classifier"], "features": ["features"], "all": [""], **vgg_conv_names(model)}
    if isinstance(model, ResNet):
        features = [name for name, _ in model.named_children() if name != "fc"]
        return {"head": ["fc"], "features": features, "all": [""], **_resnet_blocks(model)}
    if isinstance(model, ConvNeXt):
        return {"head": ["classifier"], "features": ["features"], "all": [""], **_convnext_blocks(model)}
    if isinstance(model, VisionTransformer):
        features = ["conv_proj", "class_token", "encoder.pos_embedding", "encoder.layers"]
        return {"head": ["encoder.ln", "heads"], "features": features, "all": [""], **_vit_blocks(model)}
    raise ValueError(f"no layer groups for a {type(model).__name__}; valid: VGG, ResNet, ConvNeXt, VisionTransformer")


def top_blocks(model: nn.Module, count: int) -> list[str]:
    """The `count` topmost units of the backbone, top first: what the paper's schedule
    unfreezes one at a time (VGG: conv5_4, conv5_3...; ResNet: layer4.2, layer4.1...;
    ConvNeXt: features.7.2... then the downsampling features.6; ViT: encoder.layers.11...)."""
    groups = layer_groups(model)
    if isinstance(model, VGG):
        units = list(vgg_conv_names(model))
    elif isinstance(model, ResNet):
        units = [name for name in groups if name.startswith("layer") and "." in name]
    elif isinstance(model, ConvNeXt):
        units = [name for position, child in enumerate(model.features) if position
                 for name in (_convnext_units(position, child))]
    else:
        units = [name for name in groups if name.startswith("encoder.layers.")]
    return units[::-1][:count]


def _convnext_units(position: int, child: nn.Module) -> list[str]:
    if _is_convnext_stage(child):
        return [f"features.{position}.{i}" for i in range(len(child))]
    return [f"features.{position}"]


# ---- Grad-CAM: where to look, and the split into trunk and tail --------------------------

def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM looks at, on the full model (see the module docstring). For ViT
    its output is a token sequence (N, 1 + h*w, C): the split reshapes its patch tokens."""
    if isinstance(model, VGG):
        return _vgg_cam_layer(model)
    if isinstance(model, ResNet):
        return model.layer4
    if isinstance(model, ConvNeXt):
        return model.features
    if isinstance(model, VisionTransformer):
        return model.encoder.layers[-1].ln_1
    raise ValueError(f"no Grad-CAM layer for a {type(model).__name__}")


def last_conv_layer(model: VGG) -> nn.Conv2d:
    """The last Conv2d of a VGG's feature stack."""
    return [m for m in model.features if isinstance(m, nn.Conv2d)][-1]


def _vgg_cam_layer(model: VGG) -> nn.Module:
    """The last conv layer's rectified feature maps (the ReLU after conv5_4, after its batch
    norm where there is one), as in the Grad-CAM paper. The raw conv output before batch
    norm can flip sign per channel and zero out the map."""
    layers = list(model.features)
    position = layers.index(last_conv_layer(model))
    for module in layers[position + 1:]:
        if isinstance(module, nn.ReLU):
            return module
        if not isinstance(module, nn.BatchNorm2d):
            break
    return layers[position]


@dataclass
class CamSplit:
    """trunk: images -> activations (the expensive part, run once without gradients);
    tail: activations -> logits, passing the CAM-shaped (N, C, h, w) tensor through
    `tail.cam_output`, the layer captum attributes to; `tail.logits_and_embeddings` also gives
    the pooled features that enter the head, from the same tail pass (ResNet: the pooled vector
    `fc` reads; ConvNeXt: the pooled vector after the classifier's LayerNorm, what the new head
    reads; VGG: the global average of the grid the head reads; ViT: the class token after the
    final LayerNorm)."""
    trunk: nn.Module
    tail: nn.Module


def cam_split(model: nn.Module) -> CamSplit:
    """The model cut at its Grad-CAM layer; both halves share the model's modules."""
    if isinstance(model, VGG):
        cut = list(model.features).index(_vgg_cam_layer(model)) + 1
        return CamSplit(model.features[:cut], _VggTail(model, cut))
    if isinstance(model, ResNet):
        trunk = nn.Sequential(*(getattr(model, name) for name in
                                ("conv1", "bn1", "relu", "maxpool", *RESNET_STAGES)))
        return CamSplit(trunk, _PooledTail(model.avgpool, nn.Sequential(nn.Flatten(1), model.fc)))
    if isinstance(model, ConvNeXt):
        return CamSplit(model.features, _PooledTail(model.avgpool, model.classifier))
    if isinstance(model, VisionTransformer):
        return CamSplit(_VitTrunk(model), _VitTail(model))
    raise ValueError(f"no Grad-CAM split for a {type(model).__name__}")


class _VggTail(nn.Module):
    """Everything after the VGG's CAM layer: its output enters through `cam_output`."""

    def __init__(self, model: VGG, start: int):
        super().__init__()
        self.cam_output = nn.Identity()
        self.rest = model.features[start:]
        self.avgpool = model.avgpool
        self.classifier = model.classifier
        for module in self.rest:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # in-place would overwrite the saved conv output

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.head_grid(activations), 1))

    def head_grid(self, activations: torch.Tensor) -> torch.Tensor:
        """The grid the head reads, flattened: after the last max-pool and avgpool, (N, 512, 7, 7) for VGG19
        at 224 (the CAM layer's 14x14 grid is before that max-pool)."""
        return self.avgpool(self.rest(self.cam_output(activations)))

    def logits_and_embeddings(self, activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, classes) logits and (N, C) embeddings: the grid the head reads (after the last max-pool),
        averaged over its positions (512-d for VGG19). Both heads (the paper's, torchvision's with a new last
        Linear) read that whole grid flattened; its global average is the pooled summary of the same
        features, as ResNet's and ConvNeXt's heads read theirs. One pass: no extra cost over prediction."""
        grid = self.head_grid(activations)  # (N, C, 7, 7)
        return self.classifier(torch.flatten(grid, 1)), grid.mean(dim=(2, 3))

    def cam_hw(self, activations: torch.Tensor) -> tuple[int, int]:
        return tuple(activations.shape[2:])


class _PooledTail(nn.Module):
    """ResNet and ConvNeXt after their last stage: global pooling, then the classifier, a Sequential whose
    last module is the head (ResNet: Flatten, fc; ConvNeXt: LayerNorm2d, Flatten, the head)."""

    def __init__(self, pool: nn.Module, classifier: nn.Sequential):
        super().__init__()
        self.cam_output = nn.Identity()
        self.pool = pool
        self.before_head = classifier[:-1]  # shares the modules: ConvNeXt's LayerNorm stays trained
        self.head = classifier[-1]

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embeddings(self.cam_output(activations))[0]  # (N, C, h, w) -> (N, classes)

    def logits_and_embeddings(self, activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, classes) logits and the (N, C) vector the head reads (ConvNeXt: after the classifier's
        LayerNorm, which the head's weights were trained on), from one pooling."""
        features = self.before_head(self.pool(activations)).flatten(1)  # (N, C, 1, 1) -> (N, C)
        return self.head(features), features

    def cam_hw(self, activations: torch.Tensor) -> tuple[int, int]:
        return tuple(activations.shape[2:])


class _VitTrunk(nn.Module):
    """Patch embedding, class token, positions and every encoder block but the last."""

    def __init__(self, model: VisionTransformer):
        super().__init__()
        self.vit = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit._process_input(images)  # (N, h*w, C)
        x = torch.cat([vit.class_token.expand(len(x), -1, -1), x], dim=1)
        x = vit.encoder.dropout(x + vit.encoder.pos_embedding)
        return vit.encoder.layers[:-1](x)  # (N, 1 + h*w, C): the last block's input


class _VitTail(nn.Module):
    """The last encoder block, computed for the class token only (the only token the head
    reads: about a sixth of the block's work), then the final LayerNorm and the head.
    Its ln_1 output's patch tokens pass through `cam_output` as a (N, C, h, w) grid."""

    def __init__(self, model: VisionTransformer):
        super().__init__()
        self.cam_output = nn.Identity()
        self.block = model.encoder.layers[-1]
        self.ln = model.encoder.ln
        self.heads = model.heads

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.heads(self.class_token_out(tokens))

    def logits_and_embeddings(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, classes) logits and (N, C) embeddings: the class token that enters `heads`."""
        embeddings = self.class_token_out(tokens)
        return self.heads(embeddings), embeddings

    def class_token_out(self, tokens: torch.Tensor) -> torch.Tensor:
        """The class token after the last block and the final LayerNorm, (N, C): what `heads` reads."""
        block = self.block
        normed = block.ln_1(tokens)  # (N, 1 + h*w, C)
        grid = self.cam_output(tokens_to_grid(normed[:, 1:]))  # (N, C, h, w)
        normed = torch.cat([normed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
        attended, _ = block.self_attention(normed[:, :1], normed, normed, need_weights=False)  # (N, 1, C)
        x = tokens[:, :1] + block.dropout(attended)
        x = x + block.mlp(block.ln_2(x))
        return self.ln(x)[:, 0]

    def cam_hw(self, activations: torch.Tensor) -> tuple[int, int]:
        side = _grid_side(activations.shape[1] - 1)
        return side, side


def tokens_to_grid(patch_tokens: torch.Tensor) -> torch.Tensor:
    """(N, h*w, C) patch tokens of a square image -> (N, C, h, w), row-major like conv_proj."""
    n, count, channels = patch_tokens.shape
    side = _grid_side(count)
    return patch_tokens.transpose(1, 2).reshape(n, channels, side, side)


def _grid_side(count: int) -> int:
    side = int(round(count ** 0.5))
    if side * side != count:
        raise ValueError(f"{count} patch tokens do not form a square grid")
    return side
