"""Architecture series of pytorchcv models: the reviewed name → series table.

A series is the unit the regression fits within (with the dataset): models that share a design
and differ in depth/width. The table covers every name in pytorchcv 0.0.74's
``model_metainfos.csv`` (a test checks this) and groups the paper's 17 ImageNet families as the
paper does (Martin, Peng & Mahoney 2021): ResNet, SENet (SE-ResNet, SE-PreResNet, SE-ResNeXt,
SENet), DIA-ResNet (DIA-ResNet, DIA-PreResNet), ResNeXt, WRN, DLA, PreResNet, ProxylessNAS, VGG
(VGG, BN-VGG), IGCV3, EfficientNet, SqueezeNext, ShuffleNet, DRN (DRN-C, DRN-D), ESPNetv2, HRNet
and SqueezeNet (SqueezeNet, SqueezeResNet).

Review notes: ResNet-BC and "b" variants stay in ResNet (same design, bottleneck placement);
ResNet(A)/ResNet-D and ShuffleNetV2 are different designs and get their own series; IBN and
attention add-ons (BAM, CBAM) are their own series since their blocks differ from the base net.
"""
from __future__ import annotations

import re

# Dataset / language suffixes stripped before matching (the dataset is a separate column).
_SUFFIX = re.compile(
    r"_(cifar10|cifar100|svhn|cub|voc|ade20k|cityscapes|cmupan_coco|coco|celebamaskhq|widerface|"
    r"things|small|en_ls|en_nr|en|de|fr|it|es|ca|pl|ru34|ru)$"
)

# (pattern on the suffix-free name, series). First match wins, so specific prefixes come first.
ARCHITECTURE_TABLE: tuple[tuple[str, str], ...] = (
    # --- the paper's 17 families -----------------------------------------------------------
    (r"^seresnext\d", "SENet"),
    (r"^sepreresnet(bc)?\d", "SENet"),
    (r"^seresnet(bc)?\d", "SENet"),
    (r"^senet\d", "SENet"),
    (r"^diapreresnet\d", "DIA-ResNet"),
    (r"^diaresnet\d", "DIA-ResNet"),
    (r"^resnext\d", "ResNeXt"),
    (r"^wrn\d", "WRN"),
    (r"^dla\d", "DLA"),
    (r"^preresnet(bc)?\d", "PreResNet"),
    (r"^proxylessnas_", "ProxylessNAS"),
    (r"^(bn_)?vgg\d", "VGG"),
    (r"^igcv3_", "IGCV3"),
    (r"^efficientnet_", "EfficientNet"),
    (r"^sqnxt\d", "SqueezeNext"),
    (r"^shufflenet_", "ShuffleNet"),
    (r"^drn[cd]\d", "DRN"),
    (r"^espnetv2_", "ESPNetv2"),
    (r"^hrnet(v2)?_", "HRNet"),
    (r"^squeeze(resnet|net)_v", "SqueezeNet"),
    (r"^resnet(bc)?\d", "ResNet"),
    # --- the rest of the zoo ---------------------------------------------------------------
    (r"^alexnetb?$", "AlexNet"),
    (r"^zfnetb?$", "ZFNet"),
    (r"^bninception$", "BN-Inception"),
    (r"^resneta(bc)?\d", "ResNet-A"),
    (r"^resnetd\d", "ResNet-D"),
    (r"^resnesta(bc)?\d", "ResNeSt"),
    (r"^ibnb?_", "IBN-Net"),
    (r"^airnext\d", "AirNeXt"),
    (r"^airnet\d", "AirNet"),
    (r"^bam_resnet\d", "BAM-ResNet"),
    (r"^cbam_resnet\d", "CBAM-ResNet"),
    (r"^scneta?\d", "SCNet"),
    (r"^regnetx\d", "RegNetX"),
    (r"^regnety\d", "RegNetY"),
    (r"^pyramidnet\d", "PyramidNet"),
    (r"^diracnet\d", "DiracNetV2"),
    (r"^xdensenet\d", "X-DenseNet"),
    (r"^densenet\d", "DenseNet"),
    (r"^condensenet\d", "CondenseNet"),
    (r"^peleenet$", "PeleeNet"),
    (r"^dpn\d", "DPN"),
    (r"^darknet", "DarkNet"),
    (r"^irevnet\d", "i-RevNet"),
    (r"^bagnet\d", "BagNet"),
    (r"^fishnet\d", "FishNet"),
    (r"^dicenet_", "DiCENet"),
    (r"^vovnet\d", "VoVNet"),
    (r"^selecsls\d", "SelecSLS"),
    (r"^hardnet\d", "HarDNet"),
    (r"^shufflenetv2b?_", "ShuffleNetV2"),
    (r"^menet\d", "MENet"),
    (r"^fdmobilenet_", "FD-MobileNet"),
    (r"^mobilenetv3_", "MobileNetV3"),
    (r"^mobilenetv2b?_", "MobileNetV2"),
    (r"^mobilenetb?_", "MobileNet"),
    (r"^mnasnet_", "MnasNet"),
    (r"^darts$", "DARTS"),
    (r"^fbnet_", "FBNet"),
    (r"^xception$", "Xception"),
    (r"^inceptionv[34]$", "Inception"),
    (r"^inceptionresnetv[12]$", "InceptionResNet"),
    (r"^polynet$", "PolyNet"),
    (r"^nasnet_", "NASNet"),
    (r"^pnasnet", "PNASNet"),
    (r"^spnasnet$", "SPNASNet"),
    (r"^mixnet_", "MixNet"),
    (r"^ghostnet$", "GhostNet"),
    (r"^tresnet_", "TResNet"),
    (r"^sparsenet\d", "SparseNet"),
    (r"^octresnet\d", "Oct-ResNet"),
    (r"^msdnet\d", "MSDNet"),
    (r"^fractalnet$", "FractalNet"),
    (r"^nin$", "NIN"),
    (r"^ror3_", "RoR"),
    (r"^rir$", "RiR"),
    (r"^shakeshakeresnet\d", "Shake-Shake-ResNet"),
    (r"^ntsnet$", "NTS-Net"),
    (r"^pspnet_", "PSPNet"),
    (r"^deeplabv3_", "DeepLabv3"),
    (r"^fcn8sd_", "FCN-8s(d)"),
    (r"^icnet_", "ICNet"),
    (r"^fastscnn$", "Fast-SCNN"),
    (r"^sinet$", "SINet"),
    (r"^bisenet_", "BiSeNet"),
    (r"^danet_", "DANet"),
    (r"^erfnet$", "ERFNet"),
    (r"^esnet$", "ESNet"),
    (r"^linknet$", "LinkNet"),
    (r"^sqnet$", "SQNet"),
    (r"^cgnet$", "CGNet"),
    (r"^edanet$", "EDANet"),
    (r"^enet$", "ENet"),
    (r"^lednet$", "LEDNet"),
    (r"^espcnet$", "ESPNet-C"),
    (r"^fpenet$", "FPENet"),
    (r"^alphapose_", "AlphaPose"),
    (r"^simplepose_mobile_", "SimplePose-Mobile"),
    (r"^simplepose_", "SimplePose"),
    (r"^lwopenpose[23]d_", "LW-OpenPose"),
    (r"^ibppose$", "IBPPose"),
    (r"^jasper(dr)?\d", "Jasper"),
    (r"^quartznet\d", "QuartzNet"),
    (r"^visemenet\d", "VisemeNet"),
    (r"^nvpattexp", "NVPAttExp"),
    (r"^prnet$", "PRNet"),
    (r"^voca\d", "VOCA"),
    (r"^superpointnet$", "SuperPointNet"),
    (r"^lffd\d", "LFFD"),
    (r"^pfpcnet$", "PFPCNet"),
    (r"^raft$", "RAFT"),
    (r"^propainter", "ProPainter"),
)
PAPER_FAMILIES = (
    "ResNet", "SENet", "DIA-ResNet", "ResNeXt", "WRN", "DLA", "PreResNet", "ProxylessNAS", "VGG",
    "IGCV3", "EfficientNet", "SqueezeNext", "ShuffleNet", "DRN", "ESPNetv2", "HRNet", "SqueezeNet",
)
_COMPILED = tuple((re.compile(pattern), series) for pattern, series in ARCHITECTURE_TABLE)


def strip_dataset_suffix(model_name: str) -> str:
    """``resnet20_cifar10`` → ``resnet20``; names without a dataset suffix are returned as they are."""
    return _SUFFIX.sub("", model_name.lower())


def lookup_architecture(model_name: str) -> str | None:
    """The series from the reviewed table, or None when no row matches."""
    name = model_name.lower()
    for candidate in dict.fromkeys((strip_dataset_suffix(name), name)):
        for pattern, series in _COMPILED:
            if pattern.search(candidate):
                return series
    return None


def architecture_of(model_name: str) -> str:
    """Architecture series of a pytorchcv model name (``resnet20_cifar10`` → ``ResNet``).

    Names outside the table fall back to their leading letters (``foonet12_w2`` → ``foonet``).
    """
    found = lookup_architecture(model_name)
    if found is not None:
        return found
    match = re.match(r"[a-z_]*?[a-z]+(?=\d|_|$)", strip_dataset_suffix(model_name))
    return match.group(0) if match else model_name.lower()
